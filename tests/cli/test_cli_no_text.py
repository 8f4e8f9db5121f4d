"""An image-only backbone (efficientnet-lite0, real weights) as a user meets it on the command line.

Everything that learns from examples works (teach, segment a file and a folder, export, eval); every path
that needs a class name stops in one line naming the class and the two ways out, exit 2, nothing written.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from cli_runner import LITE, rns
from PIL import Image

from rns.cli import cli
from rns.cli.errors import run_with_user_errors

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"


@pytest.fixture(scope="module")
def taught(tmp_path_factory, one_torch_thread) -> Path:
    """A memory taught CamVid's 11 classes from examples/support.jpg with lite0 (one add-support)."""
    memory = tmp_path_factory.mktemp("lite") / "memory.zarr"
    code = run_with_user_errors(cli, ["add-support", str(EXAMPLES / "support.jpg"),
                                      str(EXAMPLES / "support_mask.png"), "--classes-file",
                                      str(EXAMPLES / "classes.txt"),
                                      "--memory", str(memory), *LITE])
    assert code == 0
    return memory


def _refused(code: int, err: str, name: str) -> None:
    assert code == 2, err
    line = err.strip()
    assert "\n" not in line and "Traceback" not in line, err
    assert f"'{name}'" in line and "has no text encoder" in line
    assert "rns add-support" in line and "CLIP model" in line


def test_teach_then_segment_a_file_and_a_folder(taught, tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(EXAMPLES / "street.jpg", folder / "a.jpg")
    shutil.copy(EXAMPLES / "support.jpg", folder / "b.jpg")
    code, out, err = rns(["segment", str(EXAMPLES / "street.jpg"), "--classes", "road,car", "--memory",
                          str(taught), "--out", str(tmp_path / "one"), *LITE], capsys)
    assert code == 0, err
    assert "efficientnet-lite0" in out + err and (tmp_path / "one" / "street.labels.png").is_file()
    code, out, err = rns(["segment", str(folder), "--memory", str(taught), "--out", str(tmp_path / "many"),
                          "--export", "coco", "-q", *LITE], capsys)
    assert code == 0, err
    assert {p.name for p in (tmp_path / "many").glob("*.labels.png")} == {"a.labels.png", "b.labels.png"}
    classes = [c["name"] for c in json.loads((tmp_path / "many" / "classes.json").read_text())["classes"]]
    assert classes == (EXAMPLES / "classes.txt").read_text().split("\n")[:11]  # no background: none taught


def _labelled(tmp_path: Path, names: list[str]) -> list[str]:
    """A one-photo eval set whose mask keeps CamVid ids 0 (sky) and 1 (building) only."""
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    shutil.copy(EXAMPLES / "support.jpg", images / "s.jpg")
    mask = np.asarray(Image.open(EXAMPLES / "support_mask.png")).copy()
    mask[mask > 1] = 255
    Image.fromarray(mask).save(masks / "s.png")
    classes = tmp_path / "classes.txt"
    classes.write_text("\n".join(names) + "\n")
    return ["--images", str(images), "--masks", str(masks), "--classes-file", str(classes)]


def test_eval_of_taught_classes_runs(taught, tmp_path, capsys):
    code, out, err = rns(["eval", *_labelled(tmp_path, ["sky", "building"]), "--memory", str(taught),
                          "--json", *LITE], capsys)
    assert code == 0, err
    assert json.loads(out)["miou"] > 50  # its own training photo: a sanity check, not accuracy


def test_zero_shot_is_refused(taught, tmp_path, capsys):
    out = tmp_path / "out"
    code, _, err = rns(["segment", str(EXAMPLES / "street.jpg"), "--classes", "road", "--zero-shot",
                        "--memory", str(taught), "--out", str(out), *LITE], capsys)
    _refused(code, err, "road")
    assert not out.exists()


def test_a_class_without_examples_is_refused(taught, tmp_path, capsys):
    out = tmp_path / "out"
    code, _, err = rns(["segment", str(EXAMPLES / "street.jpg"), "--classes", "road,bus", "--memory",
                        str(taught), "--out", str(out), *LITE], capsys)
    _refused(code, err, "bus")
    assert not out.exists()


def test_an_empty_memory_is_refused_for_the_first_class(tmp_path, capsys):
    out = tmp_path / "out"
    code, _, err = rns(["segment", str(EXAMPLES / "street.jpg"), "--classes", "car", "--memory",
                        str(tmp_path / "none.zarr"), "--out", str(out), *LITE], capsys)
    _refused(code, err, "car")
    assert not out.exists() and not (tmp_path / "none.zarr").exists()


def test_text_for_a_class_is_refused_before_anything_is_stored(tmp_path, capsys):
    memory = tmp_path / "memory.zarr"
    code, _, err = rns(["add-support", str(EXAMPLES / "support.jpg"), str(EXAMPLES / "support_mask.png"),
                        "--class", "car", "--text", "a parked car", "--memory", str(memory), *LITE], capsys)
    _refused(code, err, "car")
    assert not memory.exists()


def test_eval_of_a_class_the_memory_lacks_is_refused(taught, tmp_path, capsys):
    code, _, err = rns(["eval", *_labelled(tmp_path, ["sky", "building", "bus"]), "--memory", str(taught),
                        *LITE], capsys)
    _refused(code, err, "bus")
