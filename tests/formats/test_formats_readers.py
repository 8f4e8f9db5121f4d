"""The format readers on small exports written the way the tools write them (tests/data/formats).

Each test checks pixels well inside each shape (so the result does not hinge on a rasteriser's edge
rule), the overlap rule, unlabelled pixels, and that a broken entry is reported by name while the
other entries still come through.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pycocotools", reason="the formats extra is not installed: pip install 'rns[formats]'")
pytest.importorskip("cv2", reason="the formats extra is not installed: pip install 'rns[formats]'")

from rns.errors import InputError  # noqa: E402
from rns.formats.items import ItemProblem, LabelledItem  # noqa: E402
from rns.formats.sources import ImportRequest, open_import  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "data" / "formats"
UNLABELLED = 255


Items = dict[str, LabelledItem]


def items_and_problems(request: ImportRequest) -> tuple[list[str], Items, list[ItemProblem]]:
    imported = open_import(request)
    items: dict[str, LabelledItem] = {}
    problems: list[ItemProblem] = []
    for entry in imported.entries():
        if isinstance(entry, ItemProblem):
            problems.append(entry)
        else:
            items[Path(entry.image).name if isinstance(entry.image, Path) else entry.name] = entry
    return imported.class_names, items, problems


def rect(mask: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    """The mask's values in the rectangle [x0, x1) x [y0, y1)."""
    return mask[y0:y1, x0:x1]


# ------------------------------------------------------------------------------------------------ COCO
def coco_request(**changes) -> ImportRequest:
    return ImportRequest(coco=DATA / "coco" / "instances.json", images_dir=DATA / "images", **changes)


def test_coco_polygons_rle_crowd_and_overlaps() -> None:
    names, items, problems = items_and_problems(coco_request())
    assert names == ["person", "road", "car"]
    person, road, car = 0, 1, 2
    first = items["street1.jpg"].mask
    assert (rect(first, 5, 5, 15, 7) == car).all()  # the car polygon where nothing overlaps it
    assert (rect(first, 17, 9, 20, 14) == person).all()  # car/person overlap: the later person wins
    assert (rect(first, 21, 15, 28, 20) == person).all()
    # The compressed-RLE car is exact, and wins over the crowd of people listed after it.
    assert (rect(first, 32, 22, 38, 28) == car).all()
    crowd_only = np.zeros(first.shape, dtype=bool)
    crowd_only[20:30, 30:46] = True
    crowd_only[22:28, 32:38] = False
    assert (first[crowd_only] == person).all()
    assert first[0, 0] == UNLABELLED and first[31, 47] == UNLABELLED  # no annotation: unlabelled
    second = items["street2.jpg"].mask  # listed as images/street2.jpg: found by its base name
    assert (rect(second, 0, 22, 48, 32) == road).all()  # uncompressed RLE, exact
    assert (rect(second, 0, 0, 48, 22) != road).all()
    assert (rect(second, 11, 7, 15, 15) == person).all()


def test_coco_reports_each_broken_image_and_keeps_the_rest() -> None:
    _, items, problems = items_and_problems(coco_request())
    assert sorted(items) == ["street1.jpg", "street2.jpg"]
    reasons = {problem.name: problem.reason for problem in problems}
    assert len(reasons) == 3
    assert "not found" in reasons["instances.json image 3 (missing.jpg)"]
    assert "category id 99" in reasons["instances.json image 4 (street3.jpg)"]
    assert "outside the 48x32 image" in reasons["instances.json image 5 (street4.jpg)"]


def test_coco_categories_keep_a_subset() -> None:
    names, items, _ = items_and_problems(coco_request(categories="car"))
    assert names == ["car"]
    first = items["street1.jpg"].mask
    assert (rect(first, 5, 5, 15, 7) == 0).all()
    assert (rect(first, 21, 15, 28, 20) == UNLABELLED).all()  # the person is left out
    assert (items["street2.jpg"].mask == UNLABELLED).all()
    with pytest.raises(InputError, match="'truck'.*it has: person, road, car"):
        open_import(coco_request(categories="car,truck"))


def write_coco(tmp_path: Path, annotation: dict) -> Path:
    document = json.loads((DATA / "coco" / "instances.json").read_text())
    document["images"] = document["images"][:1]
    document["annotations"] = [{"id": 1, "image_id": 1, "category_id": 2, "iscrowd": 0, **annotation}]
    path = tmp_path / "one.json"
    path.write_text(json.dumps(document))
    return path


@pytest.mark.parametrize(
    ("segmentation", "message"),
    [
        ({"size": [32, 48], "counts": "PPPP"}, "does not cover"),  # a string that decodes to garbage
        ({"size": [16, 48], "counts": [100, 668]}, "RLE size"),
        ({"size": [32, 48], "counts": [5, 5]}, "do not cover"),
        ([[1, 2, 3, 4]], "at least 3"),
    ],
)
def test_coco_broken_segmentations_are_item_problems(tmp_path: Path, segmentation, message: str) -> None:
    path = write_coco(tmp_path, {"segmentation": segmentation})
    _, items, problems = items_and_problems(ImportRequest(coco=path, images_dir=DATA / "images"))
    assert not items and len(problems) == 1 and message in problems[0].reason


def test_coco_file_level_errors_are_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="bad.json: not a readable COCO file"):
        open_import(ImportRequest(coco=bad, images_dir=DATA / "images"))
    bad.write_text(json.dumps({"images": [], "annotations": []}))
    with pytest.raises(InputError, match="no 'categories' list"):
        open_import(ImportRequest(coco=bad, images_dir=DATA / "images"))
    with pytest.raises(InputError, match="--coco needs --images DIR"):
        open_import(ImportRequest(coco=bad))
    with pytest.raises(InputError, match="--coco and --labelme both given"):
        open_import(ImportRequest(coco=bad, labelme=DATA / "labelme", images_dir=DATA / "images"))


def test_coco_image_of_another_size_is_an_item_problem(tmp_path: Path) -> None:
    document = json.loads((DATA / "coco" / "instances.json").read_text())
    document["images"] = [{**document["images"][0], "width": 64}]
    path = tmp_path / "sized.json"
    path.write_text(json.dumps(document))
    _, items, problems = items_and_problems(ImportRequest(coco=path, images_dir=DATA / "images"))
    assert not items and "is 48x32 but sized.json says 64x32" in problems[0].reason


# ---------------------------------------------------------------------------------------------- LabelMe
def test_labelme_polygon_rectangle_circle_and_embedded_image() -> None:
    # LabelMe saved apart from its images (imagePath "../images/street1.jpg"): --images names their folder
    request = ImportRequest(labelme=DATA / "labelme", images_dir=DATA / "images")
    names, items, problems = items_and_problems(request)
    assert names == ["road", "car", "person"]
    road, car, person = 0, 1, 2
    first = items["street1.jpg"].mask  # image found through imagePath, relative to the JSON
    assert (rect(first, 1, 21, 47, 31) == road).all()
    assert (rect(first, 5, 5, 20, 14) == car).all()
    assert (rect(first, 32, 8, 37, 13) == person).all()  # the circle: centre (34, 10), radius 5
    assert first[0, 47] == UNLABELLED
    embedded = items[str(DATA / "labelme" / "street2.json")]
    assert isinstance(embedded.image, bytes) and embedded.suffix == ".jpeg"
    assert embedded.image == (DATA / "images" / "street2.jpg").read_bytes()
    second = embedded.mask
    assert (rect(second, 9, 9, 12, 24) == car).all()
    assert (rect(second, 13, 13, 18, 18) == UNLABELLED).all()  # __ignore__ drawn over the car
    assert len(problems) == 1 and problems[0].name.endswith("street3.json")
    assert "outside the 48x32 image" in problems[0].reason


def test_labelme_missing_image_is_an_item_problem(tmp_path: Path) -> None:
    document = json.loads((DATA / "labelme" / "street1.json").read_text())
    (tmp_path / "lonely.json").write_text(json.dumps({**document, "imagePath": "street1.jpg"}))
    _, items, problems = items_and_problems(ImportRequest(labelme=tmp_path))
    assert not items and "is missing" in problems[0].reason


# ------------------------------------------------------------------------------------------ CVAT and VOC
def test_cvat_colour_masks_with_labelmap() -> None:
    request = ImportRequest(labelmap=DATA / "cvat" / "labelmap.txt", images_dir=DATA / "cvat" / "JPEGImages",
                            masks_dir=DATA / "cvat" / "SegmentationClass")
    names, items, problems = items_and_problems(request)
    assert names == ["background", "car", "road"]
    mask = items["street1.jpg"].mask
    expected = np.zeros((32, 48), dtype=np.uint8)
    expected[20:, :] = 2
    expected[5:15, 5:25] = 1
    np.testing.assert_array_equal(mask, expected)  # colours map exactly, no edge to be lenient about
    assert len(problems) == 1 and "colour (1, 2, 3)" in problems[0].reason


def test_voc_palette_masks_by_the_standard_colours() -> None:
    request = ImportRequest(voc=True, images_dir=DATA / "voc" / "JPEGImages",
                            masks_dir=DATA / "voc" / "SegmentationClass")
    names, items, problems = items_and_problems(request)
    assert len(names) == 21 and names[15] == "person" and names[7] == "car"
    mask = items["2007_000032.jpg"].mask
    assert (mask[4:20, 6:30] == 15).all() and (mask[22:30, 30:44] == 7).all()
    assert (mask[3, 5:31] == UNLABELLED).all()  # VOC's border colour is ignored
    assert mask[0, 0] == 0 and not problems


def test_labelmap_errors_name_the_line(tmp_path: Path) -> None:
    labelmap = tmp_path / "labelmap.txt"
    labelmap.write_text("background:0,0,0::\ncar:250,50::\n")
    request = ImportRequest(labelmap=labelmap, images_dir=DATA / "cvat" / "JPEGImages",
                            masks_dir=DATA / "cvat" / "SegmentationClass")
    with pytest.raises(InputError, match="labelmap.txt line 2"):
        open_import(request)


# ---------------------------------------------------------------------------------------- Label Studio
def test_label_studio_brush_polygon_and_rectangle() -> None:
    request = ImportRequest(label_studio=DATA / "label_studio" / "export.json", images_dir=DATA / "images")
    names, items, problems = items_and_problems(request)
    assert names == ["road", "car"]
    first = items["street1.jpg"].mask  # the upload prefix "0a1b2c3d-" stripped; cancelled annotation skipped
    expected_brush = np.zeros((32, 48), dtype=bool)
    expected_brush[4:16, 24:40] = True
    assert (first[expected_brush] == 1).all() and (first[~expected_brush & (np.arange(32)[:, None] < 19)]
                                                   == UNLABELLED).all()
    assert (rect(first, 0, 21, 48, 32) == 0).all()  # the polygon from 62.5% to 100% of the height
    second = items["street2.jpg"].mask  # local storage URL ?d=photos/street2.jpg
    assert (rect(second, 13, 9, 35, 23) == 1).all() and second[0, 0] == UNLABELLED
    assert len(problems) == 1 and "deadbeef-not_uploaded.jpg" in problems[0].reason


# ---------------------------------------------------------------------------------------- the extra
def test_a_missing_library_names_the_extra(monkeypatch) -> None:
    import sys

    from rns.formats import _deps

    monkeypatch.setitem(sys.modules, "pycocotools.mask", None)  # what an absent package looks like
    with pytest.raises(_deps.MissingExtraError, match=r"needs pycocotools.*pip install 'rns\[formats\]'"):
        _deps.pycocotools_mask()


def test_labelme_image_path_from_another_machine_is_found_by_name(tmp_path: Path) -> None:
    document = json.loads((DATA / "labelme" / "street1.json").read_text())
    document["imagePath"] = "C:\\Users\\labeller\\photos\\street1.jpg"
    (tmp_path / "street1.json").write_text(json.dumps(document))
    shutil.copy(DATA / "images" / "street1.jpg", tmp_path / "street1.jpg")
    _, items, problems = items_and_problems(ImportRequest(labelme=tmp_path))
    assert not problems and items["street1.jpg"].image == tmp_path / "street1.jpg"
