"""CLIP-only settings and one-class binary masks, as a user of an image-only backbone meets them.

- $RNS_PRETRAINED / $RNS_VARIANT hold a CLIP user's settings: `--model efficientnet-lite0` still works;
  the same given as `--pretrained` / `--variant` on the command is refused in one line (exit 2, nothing
  written).
- Teaching one class from binary masks (`--class car`) says that the zero pixels taught nothing; segmenting
  that class alone is refused in one line naming the fix (instead of labelling every pixel `car`), and
  the fix it names (`--labels "0=background,1=car"`) gives a segmentation with both background and car.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cli_runner import LITE, rns
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
CAR = (EXAMPLES / "classes.txt").read_text().split("\n").index("car")


@pytest.fixture()
def clip_environment(monkeypatch):
    monkeypatch.setenv("RNS_PRETRAINED", "laion2b_s34b_b88k")
    monkeypatch.setenv("RNS_VARIANT", "clearclip")


@pytest.fixture(scope="module")
def car_mask(tmp_path_factory) -> Path:
    """examples/support.jpg's car pixels as a binary mask (1 = car, 0 = everything else)."""
    mask = np.asarray(Image.open(EXAMPLES / "support_mask.png"))
    assert (mask == CAR).any()
    path = tmp_path_factory.mktemp("mask") / "car.png"
    Image.fromarray((mask == CAR).astype(np.uint8)).save(path)
    return path


def _one_line(code: int, err: str) -> str:
    assert code == 2, err
    line = err.strip()
    assert "\n" not in line and "Traceback" not in line, err
    return line


def test_explicit_clip_settings_are_refused_in_one_line(tmp_path, car_mask, capsys):
    memory = tmp_path / "memory.zarr"
    base = ["add-support", str(EXAMPLES / "support.jpg"), str(car_mask), "--class", "car",
            "--memory", str(memory), *LITE]
    line = _one_line(*rns([*base, "--pretrained", "laion2b_s34b_b88k"], capsys)[::2])
    assert "'laion2b_s34b_b88k' is not a tag of efficientnet-lite0" in line and "imagenet" in line
    line = _one_line(*rns([*base, "--variant", "clearclip"], capsys)[::2])
    assert "--variant clearclip applies to CLIP models only" in line and "leave out --variant" in line
    assert not memory.exists()


def test_one_binary_class_is_refused_then_background_fixes_it(tmp_path, car_mask, clip_environment,
                                                              one_torch_thread, capsys):
    memory, out = tmp_path / "memory.zarr", tmp_path / "out"
    code, _, err = rns(["add-support", str(EXAMPLES / "support.jpg"), str(car_mask), "--class", "car",
                        "--memory", str(memory), *LITE], capsys)
    assert code == 0, err  # the CLIP settings in the environment do not break the image-only model
    assert "zero pixels of these masks are unlabelled, not background" in err
    assert '--labels "0=background,1=car"' in err

    segment = ["segment", str(EXAMPLES / "street.jpg"), "--memory", str(memory), "--out", str(out), *LITE]
    line = _one_line(*rns(segment, capsys)[::2])
    assert "every pixel would be 'car'" in line and '--labels "0=background,1=car"' in line
    assert not out.exists() or not any(out.iterdir())

    code, _, err = rns(["add-support", str(EXAMPLES / "support.jpg"), str(car_mask), "--labels",
                        "0=background,1=car", "--memory", str(memory), *LITE], capsys)
    assert code == 0, err
    code, _, err = rns([*segment, "--classes", "car"], capsys)
    assert code == 0, err
    labels = np.asarray(Image.open(out / "street.labels.png"))
    values, counts = np.unique(labels, return_counts=True)
    assert len(values) >= 2 and counts.max() < 0.95 * labels.size, (values, counts)
