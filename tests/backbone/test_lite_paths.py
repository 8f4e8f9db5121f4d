"""efficientnet-lite0 (real weights) through the other places that build or use a backbone: the ui session
(a new class is taught before it is segmented), a Ray worker's rebuild of the driver's segmenter, and
superpixel regions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rns.backbone import NoTextError, build_backbone
from rns.segment.pipeline import Segmenter, SegmentOptions
from rns.teach.mask_conventions import LabelMapping
from rns.teach.support import add_supports
from support_memory import SupportMemory

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NAMES = [line.strip() for line in (EXAMPLES / "classes.txt").read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def lite0(one_torch_thread):
    return build_backbone("efficientnet-lite0", device="cpu")


@pytest.fixture(scope="module")
def memory(lite0, tmp_path_factory):
    memory = SupportMemory.open(tmp_path_factory.mktemp("lite") / "memory.zarr")
    add_supports(lite0, memory, [(EXAMPLES / "support.jpg", EXAMPLES / "support_mask.png")],
                 LabelMapping.from_classes_file(EXAMPLES / "classes.txt"))
    return memory


def test_ui_teaches_a_new_class_before_segmenting_it(lite0, tmp_path):
    from rns.ui.config import UiConfig
    from rns.ui.session import UiSession

    session = UiSession(lite0, UiConfig(memory_path=tmp_path / "memory"), prefetch_support=False)
    photo = session.open_photo((EXAMPLES / "support.jpg").read_bytes(), "support.jpg")
    with pytest.raises(NoTextError, match="'road' has no examples"):
        session.segment(photo, ["road", "car"])
    mask = np.asarray(Image.open(EXAMPLES / "support_mask.png"))
    session.teach(photo, mask, NAMES)
    result = session.segment(photo, ["road", "car"])
    labels = result.segmentation.labels
    road = result.segmentation.class_names.index("road")
    assert (labels[mask == 3] == road).mean() > 0.8  # its own training photo: the road is found again


def test_a_ray_worker_rebuilds_the_drivers_lite_segmenter(lite0, memory):
    from rns.run.ray_worker import build_worker_segmenter, worker_recipe

    driver = Segmenter(lite0, ["road", "car"], memory=memory)
    worker = build_worker_segmenter(worker_recipe(driver))
    assert worker.backbone.has_text is False
    assert worker.settings_key() == driver.settings_key()
    street = Image.open(EXAMPLES / "street.jpg")
    assert np.array_equal(worker.segment(street).labels, driver.segment(street).labels)


def test_superpixel_regions_with_lite0(lite0, memory):
    from rns.regions import build_region_proposer

    segmenter = Segmenter(lite0, NAMES, memory=memory, options=SegmentOptions(regions="superpixels"),
                          region_proposer=build_region_proposer("superpixels", device="cpu"))
    result = segmenter.segment(Image.open(EXAMPLES / "street.jpg"))
    assert result.labels.shape == (360, 480) and result.info["mode"] == "adapted"
    assert "background" not in result.class_names  # nothing taught it and there is no text for it
