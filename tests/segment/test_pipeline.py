"""The segmentation pipeline on the tiny random model: wiring, memory use, errors.

These prove that the pieces are connected and that supports steer the prediction; they say nothing about
accuracy (random weights).
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from synthetic_images import WIDTH, save_pair, two_texture_image

from rns.adapt import AdaptConfig
from rns.errors import InputError
from rns.segment.pipeline import Segmenter, SegmentOptions, build_segmenter
from rns.teach.mask_conventions import LabelMapping
from rns.teach.support import add_supports
from support_memory import SupportMemory
from support_memory.errors import FingerprintMismatchError


@pytest.fixture()
def widget_memory(tmp_path, tiny_backbone) -> SupportMemory:
    """A memory holding two labelled two-texture photos: left texture = widget, right = background."""
    memory = SupportMemory.open(tmp_path / "memory.zarr")
    pairs = [save_pair(tmp_path / "supports", f"s{seed}", seed) for seed in (1, 2)]
    add_supports(tiny_backbone, memory, pairs, LabelMapping.parse("0=background,1=widget"))
    return memory


def widget_share(labels: np.ndarray, class_names: list[str]) -> tuple[float, float]:
    """Fraction of widget pixels in the left (widget) and right (background) halves."""
    widget = labels == class_names.index("widget")
    return float(widget[:, : WIDTH // 2].mean()), float(widget[:, WIDTH // 2 :].mean())


def test_zero_shot_segmentation_has_image_size_and_background_first(tiny_backbone):
    image = Image.fromarray(two_texture_image(0))
    seg = Segmenter(tiny_backbone, "car, road,car").segment(image)
    assert seg.class_names == ["background", "car", "road"]
    assert seg.labels.shape == (image.height, image.width)
    assert seg.labels.max() < 3
    assert sum(seg.fractions().values()) == pytest.approx(1.0)
    assert seg.info["mode"] == "zero-shot"
    assert seg.info["weights"] == "random init: for tests only"
    assert {"backbone", "upsample", "total"} <= set(seg.timings)


def test_accepts_arrays_paths_and_images_alike(tiny_backbone, tmp_path):
    array = two_texture_image(0)
    path = tmp_path / "photo.png"
    Image.fromarray(array).save(path)
    segmenter = Segmenter(tiny_backbone, "car")
    from_array = segmenter.segment(array).labels
    np.testing.assert_array_equal(from_array, segmenter.segment(path).labels)
    np.testing.assert_array_equal(from_array, segmenter.segment(Image.fromarray(array)).labels)
    with pytest.raises(InputError, match="dtype"):
        segmenter.segment(array.astype(np.float32))


def test_supports_steer_the_prediction_towards_their_class(tiny_backbone, widget_memory):
    query = two_texture_image(7)
    zero = Segmenter(tiny_backbone, "widget").segment(query)
    adapted = Segmenter(tiny_backbone, "widget", memory=widget_memory).segment(query)
    assert adapted.info["mode"] == "adapted"
    assert adapted.info["num_retrieved"] > 0
    zero_left, _ = widget_share(zero.labels, zero.class_names)
    left, right = widget_share(adapted.labels, adapted.class_names)
    assert left > 0.8, "the widget texture should be labelled widget after two examples"
    assert right < 0.2, "the background texture should stay background"
    assert left > zero_left


def test_classes_default_to_the_memory_and_zero_shot_ignores_it(tiny_backbone, widget_memory):
    segmenter = Segmenter(tiny_backbone, None, memory=widget_memory)
    assert segmenter.class_names == ["background", "widget"]
    zero = Segmenter(tiny_backbone, None, memory=widget_memory, options=SegmentOptions(zero_shot=True))
    assert zero.describe()["mode"] == "zero-shot"
    with pytest.raises(InputError, match="no classes"):
        Segmenter(tiny_backbone, None)


def test_instance_class_without_text_is_learned_from_examples(tiny_backbone, tmp_path):
    memory = SupportMemory.open(tmp_path / "memory.zarr")
    pairs = [save_pair(tmp_path / "supports", f"s{seed}", seed) for seed in (1, 2)]
    add_supports(tiny_backbone, memory, pairs, LabelMapping.parse("0=background,1=my-mug"),
                 class_texts={"my-mug": None})  # fmt: skip
    seg = Segmenter(tiny_backbone, "my-mug", memory=memory).segment(two_texture_image(9))
    mug = seg.labels == seg.class_names.index("my-mug")
    assert mug[:, : WIDTH // 2].mean() > 0.8 and mug[:, WIDTH // 2 :].mean() < 0.2
    # Without its examples the class has neither text nor support: an error that names it.
    with pytest.raises(InputError, match="my-mug"):
        Segmenter(tiny_backbone, "my-mug", memory=memory, options=SegmentOptions(zero_shot=True))


def test_background_threshold_of_one_makes_everything_background(tiny_backbone, widget_memory):
    options = SegmentOptions(adapt=AdaptConfig(background_threshold=1.0))
    segmenter = Segmenter(tiny_backbone, "widget", memory=widget_memory, options=options)
    seg = segmenter.segment(two_texture_image(3))
    assert (seg.labels == 0).all()


def test_probabilities_are_kept_only_when_asked(tiny_backbone):
    image = two_texture_image(0)
    assert Segmenter(tiny_backbone, "car").segment(image).probabilities is None
    seg = Segmenter(tiny_backbone, "car", options=SegmentOptions(keep_probabilities=True)).segment(image)
    assert seg.probabilities.shape == (2, *image.shape[:2])
    np.testing.assert_allclose(seg.probabilities.astype(np.float32).sum(0), 1.0, atol=1e-2)
    np.testing.assert_array_equal(seg.probabilities.argmax(0), seg.labels)


def test_superpixel_regions_give_each_region_one_class(tiny_backbone, widget_memory):
    from rns.regions import build_region_proposer

    proposer = build_region_proposer("superpixels", cache_dir=None)
    options = SegmentOptions(regions="superpixels")
    segmenter = Segmenter(tiny_backbone, "widget", memory=widget_memory, options=options,
                          region_proposer=proposer)  # fmt: skip
    image = Image.fromarray(two_texture_image(5))
    seg = segmenter.segment(image)
    region_map = proposer.propose(image)
    for region in np.unique(region_map):
        assert len(np.unique(seg.labels[region_map == region])) == 1


def test_memory_from_another_backbone_setting_is_refused(tmp_path, widget_memory):
    from rns.backbone import TINY_TEST_MODEL, build_backbone

    other = build_backbone(TINY_TEST_MODEL, "random", variant="naclip", device="cpu")
    with pytest.raises(FingerprintMismatchError, match="variant"):
        Segmenter(other, "widget", memory=widget_memory)
    # Zero-shot does not read the memory, so it is not refused.
    Segmenter(other, "widget", memory=widget_memory, options=SegmentOptions(zero_shot=True))


def test_settings_key_changes_with_classes_and_memory(tiny_backbone, widget_memory, tmp_path):
    key = Segmenter(tiny_backbone, "widget", memory=widget_memory).settings_key()
    assert key == Segmenter(tiny_backbone, "widget", memory=widget_memory).settings_key()
    assert key != Segmenter(tiny_backbone, "widget,car", memory=widget_memory).settings_key()
    assert key != Segmenter(tiny_backbone, "widget").settings_key()
    image, mask = save_pair(tmp_path / "more", "s3", 3)
    add_supports(tiny_backbone, widget_memory, [(image, mask)], LabelMapping.parse("0=background,1=widget"))
    assert key != Segmenter(tiny_backbone, "widget", memory=widget_memory).settings_key()


def test_build_segmenter_without_a_memory_is_zero_shot(tiny_backbone, tmp_path):
    segmenter = build_segmenter("car", memory_path=tmp_path / "none-yet", backbone=tiny_backbone)
    assert segmenter.memory is None
    assert not (tmp_path / "none-yet").exists(), "segmenting must never create a memory"


def test_small_stages_run_on_one_thread_and_give_the_callers_setting_back(tiny_backbone, widget_memory,
                                                                          monkeypatch):
    """Issue 24: the head fit runs on one torch thread inside a segment; the caller's count survives it."""
    import torch

    import rns.adapt.method as method

    seen, real_fit = [], method.fit_head

    def observed_fit(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(method, "fit_head", observed_fit)
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        segmentation = Segmenter(tiny_backbone, "widget", memory=widget_memory).segment(two_texture_image(7))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)
    assert segmentation.info["mode"] == "adapted" and seen == [1]
