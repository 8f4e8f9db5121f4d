"""`rns info`: reports model, weights, offline availability, device, memory and features; loads nothing."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from rns.backbone import RANDOM_LABEL, TINY_TEST_MODEL
from rns.backbone import weights as weights_module
from rns.cli import cli


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for name in ("RNS_MODEL", "RNS_PRETRAINED", "RNS_CHECKPOINT", "RNS_VARIANT", "RNS_MEMORY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setattr(weights_module, "cached_tag_file", lambda cfg: None)


def _info(*args: str) -> str:
    result = CliRunner().invoke(cli, ["info", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_info_offline_default_says_what_is_missing_and_how_to_fix(clean_env):
    out = _info()
    assert "model:       ViT-B-16" in out
    assert "weights:     laion2b_s34b_b88k" in out
    assert "offline use: no" in out and "--checkpoint FILE" in out and "internet" in out
    assert "device:      cpu" in out or "device:      cuda" in out
    assert "memory.zarr (not created yet)" in out
    assert "features:    maskclip" in out
    assert "short side 448 px, crop 448 px, stride 224 px" in out


def test_info_random_weights_are_labelled(clean_env):
    out = _info("--model", TINY_TEST_MODEL, "--pretrained", "random")
    assert f"weights:     {RANDOM_LABEL}" in out
    assert "offline use: yes" in out


def test_info_checkpoint_and_memory(clean_env, tmp_path, monkeypatch):
    monkeypatch.setenv("RNS_VARIANT", "maskclip")
    ckpt = tmp_path / "weights.pt"
    torch.save({"x": torch.zeros(1)}, ckpt)
    memory = tmp_path / "mem.zarr"
    memory.mkdir()
    out = _info("--checkpoint", str(ckpt), "--memory", str(memory))
    assert f"weights:     file:{ckpt.resolve()}" in out
    assert "offline use: yes" in out
    assert f"memory:      {memory} (exists)" in out
    assert "features:    maskclip" in out
    missing = _info("--checkpoint", str(tmp_path / "nope.pt"))
    assert "offline use: no" in missing and "does not exist" in missing


def test_info_flags_unknown_model_and_tag(clean_env):
    out = _info("--model", "ViT-Q-99", "--pretrained", "nope")
    assert "unknown to open_clip" in out
    assert "offline use: no" in out
