"""Writers: every output reads back to what was written; writes are atomic; palette and RLE per format."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

from rns.errors import InputError
from rns.io.atomic import atomic_open, atomic_write_json, remove_stale_temp_files
from rns.io.outputs import (
    SAVE_KINDS,
    parse_save,
    read_labels_png,
    read_probs_npz,
    render_overlay,
    save_segmentation,
    write_classes_json,
)
from rns.io.palette import class_colours, named_colours
from rns.io.rle import counts_to_string, decode_rle, encode_rle, mask_to_counts, string_to_counts
from rns.segmentation import Segmentation

NAMES = ["background", "bus", "car", "tree"]


def _segmentation(height: int = 30, width: int = 40, seed: int = 0) -> Segmentation:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(NAMES), (height, width))
    logits = rng.normal(size=(len(NAMES), height, width))
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=0, keepdims=True)
    return Segmentation(
        labels=labels,
        class_names=list(NAMES),
        probabilities=probabilities.astype(np.float16),
        timings={"features": 0.25, "fit": 0.5},
        info={"model": "fake", "weights": np.str_("none"), "k": np.int64(4)},
    )


def _photo(height: int = 30, width: int = 40) -> Image.Image:
    return Image.new("RGB", (width, height), (100, 150, 200))


def test_all_outputs_round_trip(tmp_path):
    seg = _segmentation()
    paths = save_segmentation(seg, _photo(), tmp_path, "sub/photo", save="all", source="in/photo.jpg")
    assert set(paths) == set(SAVE_KINDS)
    assert paths["labels"] == tmp_path / "sub" / "photo.labels.png"

    with Image.open(paths["labels"]) as labels_png:
        assert labels_png.mode == "P"
        palette = labels_png.getpalette()
    assert palette[:3] == [0, 0, 0]  # background black
    assert tuple(palette[3:6]) == named_colours(seg.class_names)[1]
    np.testing.assert_array_equal(read_labels_png(paths["labels"]), seg.labels)

    with Image.open(paths["overlay"]) as overlay:
        assert overlay.mode == "RGB"
        assert overlay.width == 40 and overlay.height > 30  # legend strip below the photo

    summary = json.loads(paths["summary"].read_text())
    assert summary["source"] == "in/photo.jpg"
    assert summary["size"] == {"height": 30, "width": 40}
    assert [c["name"] for c in summary["classes"]] == NAMES
    counts = np.bincount(seg.labels.ravel(), minlength=4)
    assert [c["pixels"] for c in summary["classes"]] == counts.tolist()
    assert sum(c["fraction"] for c in summary["classes"]) == pytest.approx(1.0)
    assert summary["timings"] == {"features": 0.25, "fit": 0.5}
    assert summary["info"] == {"model": "fake", "weights": "none", "k": 4}
    assert summary["outputs"]["labels"] == "photo.labels.png"

    probabilities, names = read_probs_npz(paths["probs"])
    assert names == NAMES
    assert np.abs(probabilities - seg.probabilities.astype(np.float32)).max() <= 0.5 / 255 + 1e-3

    document = json.loads(paths["rle"].read_text())
    assert document["size"] == [30, 40]
    for entry in document["classes"]:
        assert entry["segmentation"]["size"] == [30, 40]
        mask = decode_rle(entry["segmentation"])
        np.testing.assert_array_equal(mask, seg.labels == entry["id"])
        assert entry["area"] == int(mask.sum())
    assert {entry["id"] for entry in document["classes"]} == set(np.unique(seg.labels).tolist())

    leftovers = [p for p in tmp_path.rglob("*") if p.name.startswith(".")]
    assert leftovers == []


def test_overlay_colours_foreground_and_keeps_background():
    labels = np.zeros((10, 10), dtype=np.int64)
    labels[:, 5:] = 1
    seg = Segmentation(labels=labels, class_names=["background", "bus"])
    photo = Image.new("RGB", (10, 10), (100, 100, 100))
    overlay = np.asarray(render_overlay(seg, photo, alpha=0.5)).astype(int)
    np.testing.assert_array_equal(overlay[0, 0], [100, 100, 100])
    expected = (np.array([100, 100, 100]) + np.array(named_colours(['background', 'bus'])[1])) / 2
    assert np.abs(overlay[0, 9] - expected).max() <= 1  # PIL's blend rounds to an integer


def test_overlay_tints_class_zero_when_it_is_not_background():
    """With --no-background the first class is an ordinary class: it is tinted like the others."""
    labels = np.zeros((10, 10), dtype=np.int64)
    labels[:, 5:] = 1
    names = ["sky", "road"]
    photo = Image.new("RGB", (10, 10), (100, 100, 100))
    overlay = np.asarray(render_overlay(Segmentation(labels=labels, class_names=names), photo, alpha=0.5))
    expected = (np.array([100, 100, 100]) + np.array(named_colours(names)[0])) / 2
    assert np.abs(overlay[0, 0].astype(int) - expected).max() <= 1


def test_overlay_refuses_a_photo_of_another_size():
    with pytest.raises(ValueError, match="image is 41x30 but labels are 40x30"):
        render_overlay(_segmentation(), _photo(30, 41))


def test_probs_needs_probabilities(tmp_path):
    seg = _segmentation()
    seg.probabilities = None
    with pytest.raises(ValueError, match="needs probabilities"):
        save_segmentation(seg, None, tmp_path, "x", save="probs")
    assert list(tmp_path.iterdir()) == []


def test_parse_save():
    assert parse_save("labels, overlay") == {"labels", "overlay"}
    assert parse_save("all") == set(SAVE_KINDS)
    assert parse_save(["rle"]) == {"rle"}
    with pytest.raises(InputError, match="unknown output 'mask' in --save"):
        parse_save("labels,mask")
    with pytest.raises(InputError, match="names no output"):
        parse_save(" , ")


def test_classes_json(tmp_path):
    write_classes_json(tmp_path / "classes.json", NAMES)
    document = json.loads((tmp_path / "classes.json").read_text())
    assert document["format"] == "rns.classes/1"  # a published file format: renaming modules must not move it
    table = document["classes"]
    assert [(c["id"], c["name"]) for c in table] == list(enumerate(NAMES))
    assert table[0]["colour"] == "#000000"
    assert tuple(table[2]["rgb"]) == named_colours(NAMES)[2]


def test_a_class_keeps_its_colour_whatever_its_place_in_the_list():
    """Issue 26 item 16: car is one colour in `--classes car,road` and in the ui's `road, car`."""
    first, second = named_colours(["background", "car", "road"]), named_colours(["background", "road", "Car"])
    assert first[1] == second[2] and first[2] == second[1] and first[0] == second[0] == (0, 0, 0)
    many = named_colours(["background", *[f"class {i}" for i in range(80)]])
    assert len(set(many)) == len(many)  # distinct within a list, even past the colour slots


def test_palette_is_fixed_and_distinct():
    colours = class_colours(256)
    assert colours[0] == (0, 0, 0)
    assert len(set(colours)) == 256
    assert class_colours(5) == colours[:5]


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (17, 9), (64, 64)])
def test_rle_round_trip(shape):
    rng = np.random.default_rng(shape[0] * 100 + shape[1])
    for density in (0.0, 0.1, 0.5, 1.0):
        mask = rng.random(shape) < density
        rle = encode_rle(mask)
        assert rle["size"] == list(shape)
        np.testing.assert_array_equal(decode_rle(rle), mask)


def test_rle_counts_are_column_major_and_start_with_zeros():
    mask = np.array([[1, 0], [1, 1]], dtype=bool)
    # Column-major pixels: (0,0)=1 (1,0)=1 (0,1)=0 (1,1)=1 -> zeros 0, ones 2, zeros 1, ones 1.
    assert mask_to_counts(mask) == [0, 2, 1, 1]
    assert decode_rle({"size": [2, 2], "counts": [0, 2, 1, 1]}).tolist() == mask.tolist()


def test_rle_string_encoding_matches_coco():
    # Derived by hand from COCO's encoding: each 5-bit group + 48, 0x20 = more groups follow, 0x10 of the
    # last group = sign; counts after the third are stored as differences to the count two places back.
    # [0, 2, 1, 1]: '0', '2', '1', then 1 - 2 = -1 -> group 31 with the sign bit -> chr(79) = 'O'.
    assert counts_to_string([0, 2, 1, 1]) == "021O"
    # 100 = 3 * 32 + 4: first group 4 | 0x20 (more) -> 'T', then 3 -> '3'.
    assert counts_to_string([100]) == "T3"
    assert string_to_counts("021O") == [0, 2, 1, 1]


def test_counts_string_round_trip_with_large_and_negative_deltas():
    counts = [5, 1000, 3, 70000, 2, 1, 123456, 0, 7]
    assert string_to_counts(counts_to_string(counts)) == counts


def test_atomic_write_leaves_old_file_on_error(tmp_path):
    target = tmp_path / "out.json"
    atomic_write_json(target, {"v": 1})
    with pytest.raises(RuntimeError), atomic_open(target) as handle:
        handle.write(b'{"v": 2')
        raise RuntimeError("killed mid-write")
    assert json.loads(target.read_text()) == {"v": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_stale_temp_files_of_dead_writers_are_removed(tmp_path):
    dead = tmp_path / ".x.png.999999999.0123abcd.rns-tmp"  # no such pid
    dead.write_bytes(b"half")
    (tmp_path / "sub").mkdir()
    alive = tmp_path / "sub" / f".y.png.{os.getpid()}.0123abcd.rns-tmp"
    alive.write_bytes(b"being written")
    unrelated = tmp_path / ".hidden"
    unrelated.write_bytes(b"keep")
    assert remove_stale_temp_files(tmp_path) == 1
    assert not dead.exists() and alive.exists() and unrelated.exists()
