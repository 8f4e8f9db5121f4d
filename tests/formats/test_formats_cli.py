"""The format options of the commands, end to end through the tiny random model: `rns add-support`
imports (problems listed, the rest added, exit 1), `rns eval --coco`, and `rns segment --export`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pycocotools", reason="the formats extra is not installed: pip install 'rns[formats]'")
pytest.importorskip("cv2", reason="the formats extra is not installed: pip install 'rns[formats]'")

from cli_runner import TINY, rns  # noqa: E402
from pycocotools import mask as mask_utils  # noqa: E402
from pycocotools.coco import COCO  # noqa: E402

from rns.io.outputs import read_labels_png  # noqa: E402
from support_memory import SupportMemory  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "data" / "formats"


def test_add_support_from_coco_adds_the_good_images_and_lists_the_rest(tmp_path: Path, capsys) -> None:
    memory = tmp_path / "memory.zarr"
    argv = ["add-support", "--coco", DATA / "coco" / "instances.json", "--images", DATA / "images",
            "--memory", memory, *TINY]
    code, out, err = rns(argv, capsys)
    assert code == 1, err
    assert "2 image(s): 2 added, 0 replaced, 0 unchanged; 3 with problems (left out)" in out
    assert "classes: person, car, road" in out
    assert err.count("problem: ") == 3 and "category id 99" in err and "missing.jpg" in err
    sources = SupportMemory.open(memory, create=False).sources()
    # one memory entry per (image, class)
    assert sorted(sorted(s.class_names) for s in sources) == [["car"], ["person"], ["person"], ["road"]]
    code, out, _ = rns(argv, capsys)  # the same export again: nothing recomputed
    assert code == 1 and "0 added, 0 replaced, 2 unchanged" in out


@pytest.mark.parametrize(
    ("options", "added", "problems", "classes"),
    [
        (["--labelme", DATA / "labelme", "--images", DATA / "images"], 2, 1, "road, car, person"),
        (["--label-studio", DATA / "label_studio" / "export.json", "--images", DATA / "images"], 2, 1,
         "road, car"),
        (["--labelmap", DATA / "cvat" / "labelmap.txt", "--images", DATA / "cvat" / "JPEGImages", "--masks",
          DATA / "cvat" / "SegmentationClass"], 1, 1, "background, car, road"),
        (["--labels", "voc", "--images", DATA / "voc" / "JPEGImages", "--masks", DATA / "voc" /
          "SegmentationClass"], 1, 0, "background, car, person"),
    ],
)
def test_add_support_from_each_tool(tmp_path: Path, capsys, options, added, problems, classes) -> None:
    code, out, err = rns(["add-support", *options, "--memory", tmp_path / "m.zarr", *TINY], capsys)
    assert code == (1 if problems else 0), err
    assert f"{added} image(s): {added} added" in out and f"{problems} with problems" in out
    assert f"classes: {classes}" in out


def test_add_support_import_with_only_problems_leaves_no_memory(tmp_path: Path, capsys) -> None:
    document = json.loads((DATA / "coco" / "instances.json").read_text())
    document["images"] = document["images"][2:]  # missing file, unknown category, polygon outside
    document["annotations"] = [a for a in document["annotations"] if a["image_id"] >= 3]
    coco = tmp_path / "bad.json"
    coco.write_text(json.dumps(document))
    memory = tmp_path / "memory.zarr"
    argv = ["add-support", "--coco", coco, "--images", DATA / "images", "--memory", memory, *TINY]
    code, out, err = rns(argv, capsys)
    assert code == 1 and "0 image(s)" in out and err.count("problem: ") == 3
    assert not memory.exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--coco", DATA / "coco" / "instances.json", "--images", DATA / "images", "--class", "car"],
         "--class cannot be combined with --coco"),
        (["--yolo", DATA / "labelme", "--images", DATA / "images"], "--yolo finds its images itself"),
        (["--images", DATA / "images", "--masks", DATA / "images", "--labels", "0=a", "--categories", "a"],
         "--categories selects classes of an export"),
        (["--label-studio", DATA / "label_studio" / "export.json"], "--label-studio needs --images DIR"),
        (["--labelmap", DATA / "cvat" / "labelmap.txt", "--images", DATA / "images", "--masks",
          DATA / "images", "--labels", "0=car"], "--labels cannot be combined with --labelmap"),
        (["--coco", DATA / "coco" / "instances.json", "--images", DATA / "images", "--categories", "bus"],
         "--categories names 'bus'"),
    ],
)
def test_add_support_import_usage_errors(tmp_path: Path, capsys, options, message: str) -> None:
    code, _, err = rns(["add-support", *options, "--memory", tmp_path / "m.zarr", *TINY], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "m.zarr").exists()


def test_eval_with_coco_ground_truth(tmp_path: Path, capsys) -> None:
    argv = ["eval", "--images", DATA / "images", "--coco", DATA / "coco" / "instances.json", "--json",
            "--memory", tmp_path / "none.zarr", *TINY]
    code, out, err = rns(argv, capsys)
    assert code == 1, err  # three images could not be used: listed, and the exit code says so
    result = json.loads(out)
    assert result["num_images"] == 2 and list(result["iou"]) == ["person", "road", "car"]
    assert err.count("problem (not scored)") == 3
    code, _, err = rns(["eval", "--images", DATA / "images", "--coco", DATA / "coco" / "instances.json",
                        "--masks", DATA / "images", *TINY], capsys)
    assert code == 2 and "leave out --masks" in err


def coco_of_labels(out: Path, stems: list[str]) -> dict[str, np.ndarray]:
    return {stem: read_labels_png(out / f"{stem}.labels.png") for stem in stems}


def test_segment_export_coco_and_yolo_agree_with_the_label_files(tmp_path: Path, capsys) -> None:
    photos = tmp_path / "photos"
    shutil.copytree(DATA / "images", photos)
    out = tmp_path / "out"
    memory = tmp_path / "memory.zarr"  # taught, so that the random model labels more than background
    rns(["add-support", "--coco", DATA / "coco" / "instances.json", "--images", DATA / "images", "--memory",
         memory, *TINY], capsys)
    argv = ["segment", photos, "--classes", "car,road,person", "--out", out, "--export", "coco,yolo",
            "--quiet", "--memory", memory, *TINY]
    code, _, err = rns(argv, capsys)
    assert code == 0, err
    stems = sorted(p.stem for p in photos.iterdir())
    labels = coco_of_labels(out, stems)
    assert all((out / f"{stem}.probs.npz").exists() for stem in stems)  # the scores' source

    coco = COCO(str(out / "coco.json"))  # loadable by pycocotools
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == ["car", "road", "person"]
    assert coco.getCatIds() == [1, 2, 3]  # the label PNG's class ids
    assert len(coco.getImgIds()) == len(stems) and coco.getAnnIds()
    for image in coco.loadImgs(coco.getImgIds()):
        stem = Path(image["file_name"]).stem
        rebuilt = np.zeros((image["height"], image["width"]), dtype=np.int64)
        for annotation in coco.loadAnns(coco.getAnnIds(imgIds=[image["id"]])):
            pixels = coco.annToMask(annotation).astype(bool)
            assert not rebuilt[pixels].any()  # instances never overlap
            rebuilt[pixels] = annotation["category_id"]
            assert annotation["area"] == pixels.sum() and 0.0 <= annotation["score"] <= 1.0
            assert annotation["bbox"] == list(mask_utils.toBbox(annotation["segmentation"]))
        np.testing.assert_array_equal(rebuilt, labels[stem])  # background (0) is not exported

    data_yaml = (out / "yolo" / "data.yaml").read_text()
    assert "names:\n  0: car\n  1: road\n  2: person" in data_yaml and "train: images" in data_yaml
    assert sorted(p.stem for p in (out / "yolo" / "labels").iterdir()) == stems
    assert sorted(p.name for p in (out / "yolo" / "images").iterdir()) == sorted(p.name for p in
                                                                                 photos.iterdir())
    lines = [line for path in (out / "yolo" / "labels").iterdir() for line in path.read_text().splitlines()]
    assert len(lines) == len(coco.getAnnIds())  # one polygon per instance, as in the COCO file
    for line in lines:
        values = [float(v) for v in line.split()[1:]]
        assert line.split()[0] in ("0", "1", "2") and len(values) >= 6 and all(0 <= v <= 1 for v in values)

    # Resumed: every image is skipped, and the export is rebuilt from the files on disk, identically.
    first_coco = (out / "coco.json").read_bytes()
    first_labels = {p.name: p.read_bytes() for p in (out / "yolo" / "labels").iterdir()}
    (out / "coco.json").unlink()
    shutil.rmtree(out / "yolo")
    code, _, err = rns(argv, capsys)
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"]["skipped"] == len(stems) and summary["counts"]["done"] == 0
    assert (out / "coco.json").read_bytes() == first_coco
    assert {p.name: p.read_bytes() for p in (out / "yolo" / "labels").iterdir()} == first_labels
    assert not list(out.glob(".yolo-*"))  # no scratch folder left behind


def test_segment_export_leaves_failed_images_out(tmp_path: Path, capsys) -> None:
    photos = tmp_path / "photos"
    shutil.copytree(DATA / "images", photos)
    (photos / "broken.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "out"
    code, _, _ = rns(["segment", photos, "--classes", "car", "--out", out, "--export", "coco", "--quiet",
                      "--memory", tmp_path / "none.zarr", *TINY], capsys)
    assert code == 1
    names = [image["file_name"] for image in json.loads((out / "coco.json").read_text())["images"]]
    assert sorted(names) == sorted(p.name for p in (DATA / "images").iterdir())
    code, _, err = rns(["segment", photos, "--export", "voc", "--out", out, *TINY], capsys)
    assert code == 2 and "--export 'voc': choose from coco, yolo" in err


def test_add_support_import_passes_the_pooling_on(tmp_path: Path, capsys) -> None:
    memory = tmp_path / "memory.zarr"
    argv = ["add-support", "--labelme", DATA / "labelme", "--memory", memory, *TINY]
    code, _, err = rns([*argv, "--pooling", "area"], capsys)
    assert code == 1, err  # street3.json's polygon is outside its image
    code, _, err = rns(argv, capsys)  # default pooling "count": this memory holds "area" prototypes
    assert code == 2 and "pooling" in err


def test_segment_export_without_background_numbers_categories_from_one(tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    code, _, err = rns(["segment", DATA / "images", "--classes", "car,road", "--no-background", "--out", out,
                        "--export", "coco", "--quiet", "--memory", tmp_path / "none.zarr", *TINY], capsys)
    assert code == 0, err
    coco = COCO(str(out / "coco.json"))
    assert [(c["id"], c["name"]) for c in coco.loadCats(coco.getCatIds())] == [(1, "car"), (2, "road")]
    for image in coco.loadImgs(coco.getImgIds()):
        rebuilt = np.full((image["height"], image["width"]), -1)
        for annotation in coco.loadAnns(coco.getAnnIds(imgIds=[image["id"]])):
            rebuilt[coco.annToMask(annotation).astype(bool)] = annotation["category_id"] - 1
        labels = read_labels_png(out / image["file_name"].replace(".jpg", ".labels.png"))
        np.testing.assert_array_equal(rebuilt, labels)  # every pixel is a class: all of it exported


def test_segment_export_in_json_lines_mode_reports_the_export(tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    code, stdout, err = rns(["segment", DATA / "images", "--classes", "car", "--out", out, "--export", "yolo",
                             "--json", "--memory", tmp_path / "none.zarr", *TINY], capsys)
    assert code == 0, err
    last = json.loads(stdout.strip().splitlines()[-1])
    assert last == {"event": "export", "paths": {"yolo": str(out / "yolo")}, "images": 4,
                    "instances": last["instances"]}
    label_files = (out / "yolo" / "labels").iterdir()
    assert last["instances"] == sum(len(p.read_text().splitlines()) for p in label_files)
