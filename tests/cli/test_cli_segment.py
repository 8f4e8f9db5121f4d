"""`rns segment` and `rns eval` end to end on the tiny random model: files, exit codes, error lines."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cli_runner import TINY, rns
from PIL import Image
from synthetic_images import save_pair, two_texture_image


@pytest.fixture()
def photo(tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray(two_texture_image(0)).save(path)
    return path


def test_one_photo_writes_mask_overlay_and_summary(photo, tmp_path, capsys):
    out = tmp_path / "out"
    code, _, err = rns(["segment", str(photo), "--classes", "car,road", "--out", str(out), *TINY], capsys)
    assert code == 0, err
    labels = np.asarray(Image.open(out / "photo.labels.png"))
    assert labels.shape == (120, 160) and labels.max() <= 2
    assert Image.open(out / "photo.overlay.png").size[0] == 160
    summary = json.loads((out / "photo.summary.json").read_text())
    assert [c["name"] for c in summary["classes"]] == ["background", "car", "road"]
    assert "random init: for tests only" in json.dumps(summary)


def test_save_all_writes_every_kind(photo, tmp_path, capsys):
    out = tmp_path / "out"
    code, _, err = rns(["segment", str(photo), "--classes", "car", "--out", str(out), "--save", "all", "-q",
                        *TINY], capsys)  # fmt: skip
    assert code == 0, err
    names = {p.name for p in out.iterdir()}
    for suffix in ("labels.png", "overlay.png", "summary.json"):
        assert f"photo.{suffix}" in names
    assert any(name.startswith("photo.prob") for name in names)
    assert any("rle" in name for name in names)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["segment", "MISSING.jpg", "--classes", "car"], "does not exist"),
        (["segment", "NOTIMAGE", "--classes", "car"], "not an image"),
        (["segment", "PHOTO", "--classes", " , "], "names no class"),
        (["segment", "PHOTO", "--classes", "car", "--save", "labels,nope"], "unknown output"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, needle, photo, tmp_path, capsys):
    not_image = tmp_path / "fake.jpg"
    not_image.write_text("this is text, not a JPEG")
    replace = {"MISSING.jpg": str(tmp_path / "missing.jpg"), "NOTIMAGE": str(not_image), "PHOTO": str(photo)}
    argv = [replace.get(arg, arg) for arg in argv] + ["--out", str(tmp_path / "out"), *TINY]
    code, _, err = rns(argv, capsys)
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("rns: error:") and needle in lines[0]
    assert "Traceback" not in err


def test_unknown_device_is_a_usage_error(photo, capsys):
    code, _, err = rns(["segment", str(photo), "--classes", "car", "--device", "tpu"], capsys)
    assert code == 2 and "--device" in err and "Traceback" not in err


def test_folder_with_corrupt_files_reports_them_and_resumes(tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(18):
        Image.fromarray(two_texture_image(i)).save(folder / f"img{i:02d}.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (folder / "empty.jpg").write_bytes(b"")
    out = tmp_path / "out"
    argv = ["segment", str(folder), "--classes", "car", "--out", str(out), "--json", *TINY]
    code, stdout, _ = rns(argv, capsys)
    assert code == 1
    events = [json.loads(line) for line in stdout.splitlines()]
    statuses = [e.get("status") for e in events if e.get("event") == "image"]
    assert statuses.count("done") == 18 and statuses.count("failed") == 2
    assert len(list(out.glob("*.labels.png"))) == 18

    code, stdout, _ = rns(argv, capsys)
    assert code == 1
    events = [json.loads(line) for line in stdout.splitlines()]
    statuses = [e.get("status") for e in events if e.get("event") == "image"]
    assert statuses.count("skipped") == 18 and statuses.count("failed") == 2


def test_eval_scores_a_labelled_set(tmp_path, capsys):
    images, masks = tmp_path / "images", tmp_path / "masks"
    for seed in range(3):
        image, mask = save_pair(tmp_path / "raw", f"p{seed}", seed)
        images.mkdir(exist_ok=True)
        masks.mkdir(exist_ok=True)
        image.rename(images / f"p{seed}.png")
        mask.rename(masks / f"p{seed}.png")
    classes = tmp_path / "classes.txt"
    classes.write_text("background\nwidget\n")
    code, stdout, err = rns(["eval", "--images", str(images), "--masks", str(masks), "--classes-file",
                             str(classes), "--json", *TINY], capsys)  # fmt: skip
    assert code == 0, err
    result = json.loads(stdout)
    assert result["num_images"] == 3
    assert set(result["iou"]) == {"background", "widget"}
    assert 0.0 <= result["miou"] <= 100.0
    assert result["weights"] == "random init: for tests only"


def test_examples_added_on_the_command_line_are_used_by_segment(tmp_path, capsys):
    memory = str(tmp_path / "memory.zarr")
    image, mask = save_pair(tmp_path / "supports", "s1", 1)
    code, _, err = rns(["add-support", str(image), str(mask), "--labels", "0=background,1=widget",
                        "--memory", memory, *TINY], capsys)  # fmt: skip
    assert code == 0, err
    query = tmp_path / "query.png"
    Image.fromarray(two_texture_image(5)).save(query)
    out = tmp_path / "out"
    code, _, err = rns(["segment", str(query), "--classes", "widget", "--memory", memory, "--out", str(out),
                        *TINY], capsys)  # fmt: skip
    assert code == 0, err
    summary = json.loads((out / "query.summary.json").read_text())
    assert summary["info"]["mode"] == "adapted" and summary["info"]["num_retrieved"] > 0

    # Features of another variant are refused with one line naming the setting that differs.
    code, _, err = rns(["segment", str(query), "--classes", "widget", "--memory", memory, "--out", str(out),
                        "--variant", "naclip", *TINY], capsys)  # fmt: skip
    assert code == 2 and "variant" in err and len(err.strip().splitlines()) == 1


def test_a_memory_from_rns_0_1_is_refused_with_how_to_rebuild(tiny_backbone, photo, tmp_path, capsys):
    """Prototypes of the 0.1.0 extraction (feature format 1) are never mixed with new ones: segment and
    add-support both stop in one line that says to rebuild the memory with add-support."""
    from support_memory import SupportMemory

    memory_path = tmp_path / "old.zarr"
    old = {**tiny_backbone.fingerprint, "format": 1}
    SupportMemory.open(memory_path).put_source("x", np.eye(1, tiny_backbone.dim, dtype=np.float32), ["car"],
                                               fingerprint=old)  # fmt: skip
    code, _, err = rns(["segment", str(photo), "--classes", "car", "--memory", str(memory_path),
                        "--out", str(tmp_path / "out"), *TINY], capsys)  # fmt: skip
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "older rns" in err and "rebuild" in err and "rns add-support" in err
    image, mask = save_pair(tmp_path / "supports", "s1", 1)
    code, _, err = rns(["add-support", str(image), str(mask), "--labels", "0=background,1=car",
                        "--memory", str(memory_path), *TINY], capsys)  # fmt: skip
    assert code == 2 and "rebuild" in err and len(err.strip().splitlines()) == 1
    assert SupportMemory.open(memory_path).stats()["n_prototypes"] == 1  # untouched
