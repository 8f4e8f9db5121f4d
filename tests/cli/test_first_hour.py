"""Issue 12 items 7 and 8, as a user meets them: the --out lock, and the minor defects of the first hour."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_runner import TINY, rns
from PIL import Image
from synthetic_images import two_texture_image

REPO = Path(__file__).resolve().parents[2]


def photo(path: Path, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(two_texture_image(seed)).save(path)
    return path


def class_list(out: Path) -> list[str]:
    return [c["name"] for c in json.loads((out / "classes.json").read_text())["classes"]]


def spawn(argv: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    code = "import sys; from rns.cli import main; main(sys.argv[1:])"
    return subprocess.Popen([sys.executable, "-c", code, *argv], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


# --------------------------------------------------------------------------------------- item 7
def test_a_second_run_into_the_same_out_is_refused_in_one_line(tmp_path):
    """Two real processes: one holds the output folder's lock (rns's own, as a run holds it), then a run
    into the same --out is refused in one line; once the holder is gone, a run proceeds.

    (The holder used to be a run blocked on a named pipe given as an input; folder runs now refuse special
    files instead of blocking on them, so the lock is held by a process of its own.)
    """
    first_photo = photo(tmp_path / "in" / "a.png")
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    hold = ("import sys; from pathlib import Path; from rns.run.outlock import output_folder_lock\n"
            "with output_folder_lock(Path(sys.argv[1])):\n"
            "    print('locked', flush=True); sys.stdin.read()")
    holder = subprocess.Popen([sys.executable, "-c", hold, str(out)], env=env, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        second = spawn(["segment", str(first_photo), "--classes", "bus,road", "--out", str(out), "-q", *TINY])
        _, err = second.communicate(timeout=120)
        assert second.returncode == 2
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and "in use by another rns run" in lines[0] and str(out) in lines[0], err
        assert not (out / "a.labels.png").exists()
    finally:
        holder.communicate(input="", timeout=60)  # closing its stdin ends it, and its lock with it
    assert holder.returncode == 0
    # the lock went with the holder: a run now proceeds
    again = spawn(["segment", str(first_photo), "--classes", "car", "--out", str(out), "-q", *TINY])
    again.communicate(timeout=300)
    assert again.returncode == 0
    assert class_list(out) == ["background", "car"]
    assert np.asarray(Image.open(out / "a.labels.png")).max() <= 1  # ids of the list classes.json names


# --------------------------------------------------------------------------------------- item 8
@pytest.mark.parametrize("kind", ["one bad photo", "a folder with one bad photo"])
def test_summary_exit_code_is_the_process_exit_code(kind, tmp_path):
    bad = tmp_path / "in" / "bad.png"
    bad.parent.mkdir()
    bad.write_text("not an image")
    if kind == "a folder with one bad photo":
        photo(tmp_path / "in" / "good.png")
    target = bad if kind == "one bad photo" else bad.parent
    out = tmp_path / "out"
    process = spawn(["segment", str(target), "--classes", "car", "--out", str(out), "-q", *TINY])
    process.communicate(timeout=300)
    summary = json.loads((out / "summary.json").read_text())
    assert process.returncode != 0 and summary["exit_code"] == process.returncode


def test_a_list_file_with_one_missing_path_reports_it_and_goes_on(tmp_path, capsys):
    photo(tmp_path / "a.png")
    listing = tmp_path / "todo.txt"
    listing.write_text("a.png\ngone.png\n")
    out = tmp_path / "out"
    code, _, err = rns(["segment", f"@{listing}", "--classes", "car", "--out", str(out), "-q", *TINY], capsys)
    assert code == 1, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"] == {"total": 2, "done": 1, "skipped": 0, "failed": 1}
    assert summary["failures"][0]["path"] == str(tmp_path / "gone.png")
    assert "does not exist" in summary["failures"][0]["reason"]
    assert (out / "a.labels.png").exists() and "gone.png" in err


def test_class_names_are_case_insensitive_and_keep_the_first_spelling(tmp_path, capsys):
    out, memory = tmp_path / "out", tmp_path / "memory.zarr"
    image = photo(tmp_path / "p.png")
    code, _, err = rns(["segment", str(image), "--classes", "car,Car,CAR", "--out", str(out), "--zero-shot",
                        *TINY], capsys)  # fmt: skip
    assert code == 0, err
    assert class_list(out) == ["background", "car"]
    mask = tmp_path / "m.png"
    Image.fromarray((np.arange(160)[None, :].repeat(120, 0) < 80).astype(np.uint8)).save(mask)
    other = photo(tmp_path / "q.png", seed=1)
    for picture, name in ((image, "car"), (other, "Car")):
        code, _, err = rns(["add-support", str(picture), str(mask), "--class", name, "--memory", str(memory),
                            *TINY], capsys)  # fmt: skip
        assert code == 0, err
    code, listed, _ = rns(["memory", "list", "--json", "--memory", str(memory)], capsys)
    assert [(c["name"], c["prototypes"]) for c in json.loads(listed)] == [("car", 2)]
    code, _, err = rns(["segment", str(image), "--classes", "CAR", "--out", str(tmp_path / "o2"), "--memory",
                        str(memory), *TINY], capsys)  # fmt: skip
    assert code == 0, err
    names = [c["name"] for c in json.loads((tmp_path / "o2" / "classes.json").read_text())["classes"]]
    assert names == ["background", "car"]
    code, out_text, err = rns(["memory", "remove", "--class", "CAR", "--memory", str(memory)], capsys)
    assert code == 0 and "removed class car" in out_text, err


def test_memory_list_sources_shows_the_path_given_and_when(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    photo(tmp_path / "photos" / "street.png")
    mask = tmp_path / "street_mask.png"
    Image.fromarray((np.arange(160)[None, :].repeat(120, 0) < 80).astype(np.uint8)).save(mask)
    memory = ["--memory", "memory.zarr"]
    assert rns(["add-support", "photos/street.png", "street_mask.png", "--class", "car", *memory, *TINY],
               capsys)[0] == 0  # fmt: skip
    code, out, err = rns(["memory", "list", "--sources", *memory], capsys)
    assert code == 0, err
    assert "photos/street.png" in out and "car" in out
    assert re.search(r"added 20\d\d-\d\d-\d\dT\d\d:\d\d:\d\d", out), out
    code, out, _ = rns(["memory", "list", "--sources", "--json", *memory], capsys)
    (row,) = json.loads(out)
    assert row["image"] == "photos/street.png" and row["mask"] == "street_mask.png" and row["added"]
    # what list shows is what remove takes
    code, out, err = rns(["memory", "remove", "--source", "photos/street.png", *memory], capsys)
    assert code == 0 and "removed source photos/street.png" in out, err


def test_the_colour_mask_error_suggests_only_options_that_exist(tmp_path, capsys):
    image = photo(tmp_path / "p.png")
    mask = tmp_path / "rgb.png"
    rgb = np.zeros((120, 160, 3), np.uint8)
    rgb[:, :80] = (255, 0, 0)
    rgb[:, 80:] = (0, 0, 255)
    Image.fromarray(rgb).save(mask)
    code, _, err = rns(["add-support", str(image), str(mask), "--labels", "0=road,1=car", "--memory",
                        str(tmp_path / "m.zarr"), *TINY], capsys)  # fmt: skip
    assert code == 2
    (line,) = [line for line in err.splitlines() if line.strip()]
    assert "colour" in line and str(mask) in line
    help_text = rns(["add-support", "--help"], capsys)[1]
    suggested = set(re.findall(r"--[a-z][a-z-]+", line))
    assert suggested, line
    assert all(option in help_text for option in suggested), f"{suggested} not all in add-support --help"


def test_the_legend_draws_non_ascii_names_or_says_visibly_which_characters_it_cannot():
    """A CJK name must not come out as the same boxes as characters no font has (0.1.0 did exactly that)."""
    from rns.io.outputs import render_overlay
    from rns.segmentation import Segmentation

    picture = Image.new("RGB", (400, 60), (128, 128, 128))
    labels = np.zeros((60, 400), np.uint8)

    def legend(names: list[str]) -> np.ndarray:
        overlay = render_overlay(Segmentation(labels, names, None, {}, {}), picture)
        return np.asarray(overlay)[60:]

    names = ["background", "café", "自行车"]
    assert not np.array_equal(legend(names), legend(["background", "café", "\uffff\uffff\uffff"]))
    from rns.io.legend_font import has_glyph, legend_texts

    font, shown = legend_texts(names, 14)
    for name, text in zip(names, shown, strict=True):
        if text == name:
            assert all(has_glyph(font, char) for char in name)
        else:  # no installed font has these characters: their code points are written instead
            assert re.fullmatch(r"(?:<U\+[0-9A-F]{4,6}>|[^<])+", text) and "<U+" in text
    assert shown[1] == "café"  # Latin-1 letters are in every font rns looks for


def test_an_eval_classes_file_naming_one_class_twice_in_two_cases_is_refused(tmp_path):
    """With case-insensitive names, "car" and "Car" on two lines would merge two ids: refused, one line."""
    from rns.errors import InputError
    from rns.evaluate.folder_eval import load_labelled_set

    classes = tmp_path / "classes.txt"
    classes.write_text("road\ncar\nCar\n")
    with pytest.raises(InputError, match=r"lines 2 and 3 name the same class"):
        load_labelled_set(tmp_path, tmp_path, classes)
