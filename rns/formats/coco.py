"""COCO instance files: read one as semantic labels, write label maps as one.

Reading (`read_coco`): every image of the file becomes an index mask over the file's categories (in the
order the file lists them; `categories` keeps a subset). The conversion follows the COCO-Stuff tools'
instance-to-semantic rule:

- annotations are painted in the order the file lists them, a later one overwriting an earlier one where
  they overlap;
- crowd regions (`iscrowd: 1`) are painted first, with their class, and individual instances
  (`iscrowd: 0`) over them: a crowd region outlines a group loosely, so where an object is drawn on its
  own its outline wins. Crowd regions are not dropped, because CVAT exports every brush mask as a crowd
  RLE; dropping them would drop those labels;
- pixels no annotation covers are unlabelled (255), not background: an instance file says nothing about
  them.

Polygons, compressed RLE and uncompressed RLE are decoded by pycocotools. A missing image file, an
annotation whose category id the file does not define, a polygon outside its image, an RLE of another
size: each is an `ItemProblem` for its image, and the other images go on.

Writing (`coco_document`): one annotation per instance (8-connected component) of each category, its
segmentation a compressed RLE (`counts` a string), with area, bbox and, when the writer is given
probabilities, a `score` (the mean probability of the class over the instance's pixels).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rns.errors import InputError
from rns.formats import _deps
from rns.formats.confine import Confinement
from rns.formats.fields import (
    class_name,
    describe,
    file_level,
    load_json,
    number_array,
    shorten,
    whole_number,
)
from rns.formats.instances import connected_instances
from rns.formats.items import (
    ImportedSet,
    ItemError,
    ItemProblem,
    LabelledItem,
    check_points_inside,
    new_mask,
    select_classes,
)
from rns.io.imageio import read_image_header
from rns.io.rle import string_to_counts

# ------------------------------------------------------------------------------------------- reading


def find_image(images_dir: Path, file_name: str, confinement: Confinement | None = None) -> Path:
    """`images_dir/file_name`, else `images_dir/<its base name>` (exports often keep a tool's subfolder).

    Only a file inside `images_dir` (or the folders of `confinement`), links followed, is used: a name
    that leads outside (`../x.jpg`, an absolute path, a link to elsewhere) is refused with a line that
    is the same whether or not the outside file exists.
    """
    confinement = confinement or Confinement([images_dir])
    flat_name = file_name.replace("\\", "/").rsplit("/", 1)[-1]
    candidates = [images_dir / file_name]
    if flat_name not in ("", ".", ".."):
        candidates.append(images_dir / flat_name)
    return confinement.locate(candidates, repr(shorten(file_name)), "image file",
                              f"image file {shorten(file_name)!r} not found in {images_dir}; check --images")


def image_size(path: Path | bytes, name: str | None = None) -> tuple[int, int]:
    """(width, height) of an image as rns loads it (EXIF rotation applied), from its header alone: its
    pixel count is checked before anything decodes."""
    try:
        return read_image_header(path, name).upright_size
    except InputError as error:
        raise ItemError(str(error)) from None


def check_size(path: Path, width: int, height: int, what: str) -> None:
    """Refuse an image whose size differs from the size its annotations were made at."""
    actual = image_size(path)
    if actual != (width, height):
        raise ItemError(
            f"image {path} is {actual[0]}x{actual[1]} but {what} says {width}x{height}: "
            "check that it is the image that was labelled"
        )


def _rle_counts(counts: object, height: int, width: int, what: str) -> object:
    """The RLE's counts, checked to be non-negative runs covering exactly the image."""
    if isinstance(counts, str):
        try:
            runs = string_to_counts(counts)
        except ValueError:
            runs = [-1]
        if sum(runs) != height * width or any(run < 0 for run in runs):  # pycocotools would decode garbage
            raise ItemError(f"{what}: its RLE string does not cover the {width}x{height} image")
        return counts
    if isinstance(counts, list):
        runs = number_array(counts, what, pairs=False) if counts else np.empty(0)
        if (runs != np.round(runs)).any() or (runs < 0).any() or runs.sum() != height * width:
            raise ItemError(f"{what}: its RLE counts do not cover the {width}x{height} image")
        return [int(run) for run in runs]
    raise ItemError(f"{what}: RLE 'counts' must be a string or a list of numbers, not {describe(counts)}")


def _rle_mask(segmentation: Mapping[str, object], height: int, width: int, what: str) -> np.ndarray:
    mask_utils = _deps.pycocotools_mask()
    size = segmentation.get("size")
    numbers = isinstance(size, list) and all(type(v) in (int, float) for v in size)
    if not numbers or size != [height, width]:
        raise ItemError(f"{what}: RLE size {describe(size)} differs from the image's [{height}, {width}]")
    counts = _rle_counts(segmentation.get("counts"), height, width, what)
    if isinstance(counts, str):
        return mask_utils.decode({"size": [height, width], "counts": counts}).astype(bool)
    rle = mask_utils.frPyObjects({"size": [height, width], "counts": counts}, height, width)
    return mask_utils.decode(rle).astype(bool)


def _polygon_mask(polygons: list, height: int, width: int, what: str) -> np.ndarray:
    mask_utils = _deps.pycocotools_mask()
    rings = []
    for polygon in polygons:
        points = number_array(polygon, what, pairs=False) if isinstance(polygon, list) and polygon \
            else np.empty(0)
        if points.size < 6 or points.size % 2:
            raise ItemError(f"{what}: a polygon needs at least 3 (x, y) points, got {points.size} numbers")
        check_points_inside(points.reshape(-1, 2), width, height, what)
        rings.append(points.tolist())
    if not rings:
        raise ItemError(f"{what}: empty segmentation")
    return mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(rings, height, width))).astype(bool)


def decode_segmentation(segmentation: object, height: int, width: int, what: str) -> np.ndarray:
    """Boolean `[height, width]` mask of a COCO segmentation: polygons, RLE or uncompressed RLE."""
    if isinstance(segmentation, list):
        return _polygon_mask(segmentation, height, width, what)
    if isinstance(segmentation, dict):
        return _rle_mask(segmentation, height, width, what)
    raise ItemError(f"{what}: segmentation is neither polygons nor RLE")


def _categories(document: dict, path: Path) -> dict[int, str]:
    raw = document.get("categories")
    if not isinstance(raw, list) or not raw:
        raise InputError(f"{path}: no 'categories' list; is it a COCO instances file?")
    by_id: dict[int, str] = {}
    for number, entry in enumerate(raw, start=1):
        if not isinstance(entry, dict) or "id" not in entry or "name" not in entry:
            raise InputError(f"{path}: category {number} ({describe(entry)}) lacks an integer 'id' or a "
                             "'name'")
        try:
            category_id = whole_number(entry["id"], f"category {number}'s 'id'")
            name = class_name(entry["name"], f"category {number}'s 'name'")
        except ItemError as error:
            raise file_level(error, path) from None
        if category_id in by_id:
            raise InputError(f"{path}: two categories have id {category_id} ({by_id[category_id]!r} and "
                             f"{name!r}), so annotations of that id cannot be told apart; give each its own "
                             "id")
        if name in by_id.values():
            raise InputError(f"{path}: two categories are named {name!r}; give each category its own name")
        by_id[category_id] = name
    return by_id


def _image_id(entry: object) -> int | None:
    """An image entry's id when it is a whole number, else None (the entry is then reported)."""
    value = entry.get("id") if isinstance(entry, dict) else None
    try:
        return whole_number(value, "id")
    except ItemError:
        return None


def _group_annotations(raw: list) -> tuple[dict[int, list[dict]], int]:
    """Annotations by image id, and how many are not objects with a whole-number 'image_id'."""
    annotations: dict[int, list[dict]] = {}
    malformed = 0
    for annotation in raw:
        try:
            image_id = whole_number(annotation.get("image_id") if isinstance(annotation, dict) else None, "")
        except ItemError:
            malformed += 1
        else:
            annotations.setdefault(image_id, []).append(annotation)
    return annotations, malformed


def read_coco(
    path: str | os.PathLike, images_dir: str | os.PathLike, categories: Sequence[str] | None = None
) -> ImportedSet:
    """An `ImportedSet` of every image of a COCO instances file, images found under `images_dir`."""
    path, images_dir = Path(path), Path(images_dir)
    document = load_json(path, "COCO file")
    if not isinstance(document, dict) or not isinstance(document.get("images"), list) \
            or not isinstance(document.get("annotations"), list):
        raise InputError(f"{path}: a COCO file needs 'images' and 'annotations' lists")
    if not images_dir.is_dir():
        raise InputError(f"images folder {images_dir} does not exist; give the folder the COCO file's images"
                         " are in with --images")
    by_id = _categories(document, path)
    names = select_classes(list(by_id.values()), categories, str(path))
    position = {category_id: names.index(name) for category_id, name in by_id.items() if name in names}
    images = document["images"]
    annotations, malformed = _group_annotations(document["annotations"])
    ids = Counter(image_id for image_id in map(_image_id, images) if image_id is not None)
    orphans = [describe(a.get("id")) for key, group in annotations.items() if key not in ids for a in group]
    confinement = Confinement([images_dir])

    def entries() -> Iterator[LabelledItem | ItemProblem]:
        for entry in images:
            image_id = _image_id(entry)
            name = f"{path.name} image {image_id if image_id is not None else '?'}"
            if isinstance(entry, dict) and isinstance(entry.get("file_name"), str):
                name += f" ({shorten(entry['file_name'])})"
            try:
                if image_id is None:
                    raise ItemError("needs a whole-number 'id'" if isinstance(entry, dict)
                                    else "an 'images' entry is not an object")
                if ids[image_id] > 1:
                    raise ItemError(f"{ids[image_id]} images have id {image_id}, so their annotations cannot "
                                    "be told apart; give each image its own id")
                item = _read_image(entry, annotations.get(image_id, []), by_id, position, images_dir, path,
                                   confinement)
            except ItemError as error:
                yield ItemProblem(name, str(error))
            else:
                yield item
        if orphans:
            yield ItemProblem(f"{path.name}", f"annotations {', '.join(orphans[:5])} refer to image ids not "
                              "in 'images'")
        if malformed:
            yield ItemProblem(f"{path.name}", f"{malformed} annotation(s) are not objects with a whole-number"
                              " 'image_id'; left out")

    return ImportedSet(source=str(path), class_names=names, entries=entries)


def _read_image(
    entry: dict,
    own: list[dict],
    by_id: Mapping[int, str],
    position: Mapping[int, int],
    images_dir: Path,
    path: Path,
    confinement: Confinement,
) -> LabelledItem:
    file_name = entry.get("file_name")
    if not isinstance(file_name, str) or not file_name:
        raise ItemError(f"needs a 'file_name' (text), not {describe(file_name)}")
    width = whole_number(entry.get("width"), "'width'", minimum=1)
    height = whole_number(entry.get("height"), "'height'", minimum=1)
    image_path = find_image(images_dir, file_name, confinement)
    check_size(image_path, width, height, f"{path.name}")
    mask = new_mask(height, width)
    # Crowd regions first, then individual instances over them; each group in file order.
    for annotation in sorted(own, key=lambda a: not a.get("iscrowd")):
        what = f"annotation {describe(annotation.get('id'))}"
        category_id = whole_number(annotation.get("category_id"), f"{what}'s 'category_id'")
        if category_id not in by_id:
            raise ItemError(f"{what}: category id {category_id} is not in the file's categories")
        pixels = decode_segmentation(annotation.get("segmentation"), height, width, what)
        if category_id in position:  # decoded even when left out, so a broken annotation is reported
            mask[pixels] = position[category_id]
    name = f"{path.name} image {whole_number(entry.get('id'), 'id')} ({shorten(file_name)})"
    return LabelledItem(name=name, image=image_path, mask=mask)


# ------------------------------------------------------------------------------------------- writing


@dataclass(frozen=True)
class Category:
    """A COCO category and the label-map value it is written from."""

    id: int
    name: str
    value: int


@dataclass(frozen=True)
class ExportImage:
    """One image to write: its file name as the dataset will refer to it, and its label map.

    `probabilities` (`[C, H, W]`, indexed by label value) give each annotation a `score`; without them
    the annotations carry none, as in a ground-truth file.
    """

    file_name: str
    labels: np.ndarray
    probabilities: np.ndarray | None = None


def encode_mask(mask: np.ndarray) -> dict[str, object]:
    """COCO compressed RLE of a boolean mask, `counts` as a string (JSON has no bytes)."""
    mask_utils = _deps.pycocotools_mask()
    rle = mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def coco_document(images: Iterable[ExportImage], categories: Sequence[Category]) -> dict[str, object]:
    """A COCO instances dataset: images numbered from 1, one annotation per instance of each category."""
    mask_utils = _deps.pycocotools_mask()
    by_value = {category.value: category for category in categories}
    image_entries: list[dict[str, object]] = []
    annotations: list[dict[str, object]] = []
    for image_id, image in enumerate(images, start=1):
        height, width = image.labels.shape
        image_entries.append({"id": image_id, "file_name": image.file_name, "width": width, "height": height})
        for instance in connected_instances(image.labels, by_value):
            rle = encode_mask(instance.mask)
            x, y, w, h = instance.bbox
            annotation: dict[str, object] = {
                "id": len(annotations) + 1,
                "image_id": image_id,
                "category_id": by_value[instance.value].id,
                "segmentation": rle,
                "area": int(mask_utils.area({**rle, "counts": rle["counts"].encode("ascii")})),
                "bbox": [float(x), float(y), float(w), float(h)],
                "iscrowd": 0,
            }
            if image.probabilities is not None:
                score = image.probabilities[instance.value][instance.mask].mean()
                annotation["score"] = round(float(score), 4)
            annotations.append(annotation)
    return {
        "info": {"description": "written by rns", "version": "1.0"},
        "licenses": [],
        "images": image_entries,
        "annotations": annotations,
        "categories": [{"id": c.id, "name": c.name, "supercategory": ""} for c in categories],
    }
