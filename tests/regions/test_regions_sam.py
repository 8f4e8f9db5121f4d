"""SAM proposer: checkpoint resolution and its errors, generator records -> region map, settings.

The model here is a tiny SAM with RANDOM weights (`build_random_tiny_sam`): it proves the wiring through
segment_anything's automatic mask generator, nothing about mask quality.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from rns.errors import InputError, WeightsUnavailableError
from rns.regions import SAM_CHECKPOINT_ENV, build_region_proposer
from rns.regions.sam import SamProposer, build_random_tiny_sam, load_sam, resolve_sam_checkpoint


@pytest.fixture(autouse=True)
def _no_env_checkpoint(monkeypatch):
    monkeypatch.delenv(SAM_CHECKPOINT_ENV, raising=False)


def test_missing_checkpoint_is_one_line_with_the_ways_out():
    with pytest.raises(WeightsUnavailableError) as raised:
        build_region_proposer("sam", device="cpu")
    message = str(raised.value)
    assert "\n" not in message
    assert "--sam-checkpoint" in message and SAM_CHECKPOINT_ENV in message
    assert "--regions superpixels" in message


def test_checkpoint_path_that_does_not_exist(tmp_path, monkeypatch):
    missing = tmp_path / "sam_vit_b.pth"
    monkeypatch.setenv(SAM_CHECKPOINT_ENV, str(missing))
    with pytest.raises(WeightsUnavailableError) as raised:
        resolve_sam_checkpoint()
    message = str(raised.value)
    assert "\n" not in message and str(missing) in message and SAM_CHECKPOINT_ENV in message
    assert "--regions superpixels" in message


def test_explicit_checkpoint_wins_over_environment(tmp_path, monkeypatch):
    given = tmp_path / "given.pth"
    given.write_bytes(b"x")
    monkeypatch.setenv(SAM_CHECKPOINT_ENV, str(tmp_path / "other.pth"))
    assert resolve_sam_checkpoint(given) == given


def test_unreadable_and_foreign_checkpoints_are_refused_in_one_line(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"definitely not a checkpoint")
    with pytest.raises(InputError) as raised:
        load_sam(junk)
    assert "\n" not in str(raised.value) and str(junk) in str(raised.value)

    foreign = tmp_path / "foreign.pth"
    torch.save({"encoder.weight": torch.zeros(2, 2)}, foreign)
    with pytest.raises(InputError, match="not an official SAM"):
        load_sam(foreign)


def test_model_type_is_read_from_the_checkpoint_and_checked(tmp_path):
    path = tmp_path / "looks_like_vit_b.pth"
    torch.save({"image_encoder.patch_embed.proj.weight": torch.zeros(768, 3, 16, 16)}, path)
    with pytest.raises(InputError, match="holds a vit_b model, not vit_h"):
        load_sam(path, model_type="vit_h")


class StubGenerator:
    """Stands in for SamAutomaticMaskGenerator: returns fixed SAM-style records."""

    def __init__(self, records):
        self.records = records
        self.images = []

    def generate(self, image: np.ndarray):
        self.images.append(image)
        return self.records


def test_generator_records_become_a_region_map():
    height, width = 12, 16
    big = np.zeros((height, width), dtype=bool)
    big[:, :10] = True
    small = np.zeros((height, width), dtype=bool)
    small[2:5, 2:5] = True
    stub = StubGenerator([{"segmentation": big, "area": 120}, {"segmentation": small, "area": 9}])
    proposer = SamProposer(
        model=build_random_tiny_sam(), device="cpu", generator_factory=lambda model, settings: stub
    )
    region_map = proposer.propose(Image.new("RGB", (width, height), (10, 20, 30)))
    assert region_map.dtype == np.int32 and region_map.shape == (height, width)
    assert stub.images[0].shape == (height, width, 3)
    # small (kept inside big), the rest of big, and the uncovered strip on the right
    assert len(np.unique(region_map)) == 3
    assert len(np.unique(region_map[small])) == 1 and len(np.unique(region_map[:, 10:])) == 1


def test_random_tiny_sam_runs_through_the_real_generator():
    proposer = SamProposer(
        model=build_random_tiny_sam(),
        device="cpu",
        points_per_side=4,
        pred_iou_thresh=0.0,
        stability_score_thresh=0.0,
    )
    image = Image.fromarray((np.random.default_rng(0).random((48, 64, 3)) * 255).astype(np.uint8))
    region_map = proposer.propose(image)
    assert region_map.shape == (48, 64) and region_map.dtype == np.int32
    ids = np.unique(region_map)
    assert list(ids) == list(range(len(ids)))


def test_settings_defaults_overrides_and_key():
    proposer = SamProposer(model=build_random_tiny_sam(), device="cpu")
    assert proposer.settings.points_per_side == 16  # CPU default
    assert proposer.settings.crop_n_layers == 0
    tuned = SamProposer(model=build_random_tiny_sam(), device="cpu", points_per_side=8)
    assert tuned.settings.points_per_side == 8
    assert tuned.settings_key() != proposer.settings_key()
    with pytest.raises(InputError, match="unknown SAM region setting"):
        SamProposer(model=build_random_tiny_sam(), device="cpu", points_per_sid=8)
    with pytest.raises(InputError, match="model type"):
        SamProposer(model=build_random_tiny_sam(), device="cpu", model_type="vit_x")


def test_weights_identity_changes_with_the_file(tmp_path):
    path = tmp_path / "sam.pth"
    path.write_bytes(b"a" * 100)
    first = SamProposer(path, device="cpu").settings_key()
    path.write_bytes(b"b" * 100)
    assert SamProposer(path, device="cpu").settings_key() != first


def test_unknown_region_kind_is_refused():
    with pytest.raises(InputError, match="choose one of"):
        build_region_proposer("slic")
