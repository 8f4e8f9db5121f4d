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

import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from rns.errors import InputError
from rns.formats import _deps
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
from rns.mask_conventions import clean_class_name
from rns.rle import string_to_counts

# ------------------------------------------------------------------------------------------- reading


def load_json(path: Path, what: str) -> object:
    """Parse a JSON export, or raise `InputError` naming the file."""
    try:
        with open(path, encoding="utf-8-sig") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise InputError(f"{path}: {what} not found; check the path") from None
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise InputError(f"{path}: not a readable {what} ({error}); give the JSON file the tool exported") \
            from None


def find_image(images_dir: Path, file_name: str) -> Path:
    """`images_dir/file_name`, else `images_dir/<its base name>` (exports often keep a tool's subfolder)."""
    direct = images_dir / file_name
    if direct.is_file():
        return direct
    flat = images_dir / Path(file_name.replace("\\", "/")).name
    if flat.is_file():
        return flat
    raise ItemError(f"image file {file_name!r} not found in {images_dir}; check --images")


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file as rns loads it (EXIF rotation applied), from its header."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            orientation = image.getexif().get(0x0112, 1)
    except (OSError, ValueError) as error:
        raise ItemError(f"image {path} cannot be read ({error})") from None
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def check_size(path: Path, width: int, height: int, what: str) -> None:
    """Refuse an image whose size differs from the size its annotations were made at."""
    actual = image_size(path)
    if actual != (width, height):
        raise ItemError(
            f"image {path} is {actual[0]}x{actual[1]} but {what} says {width}x{height}: "
            "check that it is the image that was labelled"
        )


def _rle_mask(segmentation: Mapping[str, object], height: int, width: int, what: str) -> np.ndarray:
    mask_utils = _deps.pycocotools_mask()
    size = segmentation.get("size")
    counts = segmentation.get("counts")
    if not isinstance(size, list) or [int(v) for v in size] != [height, width]:
        raise ItemError(f"{what}: RLE size {size} differs from the image's [{height}, {width}]")
    if isinstance(counts, str):
        try:
            total = sum(string_to_counts(counts))
        except ValueError:
            total = -1
        if total != height * width:  # pycocotools would decode it into garbage without a word
            raise ItemError(f"{what}: its RLE string does not cover the {width}x{height} image")
        return mask_utils.decode({"size": [height, width], "counts": counts}).astype(bool)
    if isinstance(counts, list):
        if sum(int(c) for c in counts) != height * width or any(int(c) < 0 for c in counts):
            raise ItemError(f"{what}: its RLE counts do not cover the {width}x{height} image")
        rle = mask_utils.frPyObjects({"size": [height, width], "counts": counts}, height, width)
        return mask_utils.decode(rle).astype(bool)
    raise ItemError(f"{what}: RLE 'counts' must be a string or a list of numbers")


def _polygon_mask(polygons: list, height: int, width: int, what: str) -> np.ndarray:
    mask_utils = _deps.pycocotools_mask()
    rings = []
    for polygon in polygons:
        points = np.asarray(polygon, dtype=np.float64) if isinstance(polygon, list) else np.empty(0)
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
    for entry in raw:
        try:
            category_id, name = int(entry["id"]), clean_class_name(str(entry["name"]))
        except (KeyError, TypeError, ValueError):
            raise InputError(f"{path}: category {entry!r} lacks an integer 'id' or a 'name'") from None
        if name in by_id.values():
            raise InputError(f"{path}: two categories are named {name!r}; give each category its own name")
        by_id[category_id] = name
    return by_id


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
    annotations: dict[object, list[dict]] = {}
    for annotation in document["annotations"]:
        if isinstance(annotation, dict):
            annotations.setdefault(annotation.get("image_id"), []).append(annotation)
    known_images = {entry.get("id") for entry in images if isinstance(entry, dict)}
    orphans = [a.get("id") for key, group in annotations.items() if key not in known_images for a in group]

    def entries() -> Iterator[LabelledItem | ItemProblem]:
        for entry in images:
            name = f"{path.name} image {entry.get('id') if isinstance(entry, dict) else '?'}"
            try:
                item = _read_image(entry, annotations, by_id, position, images_dir, path)
            except ItemError as error:
                if isinstance(entry, dict) and "file_name" in entry:
                    name += f" ({entry['file_name']})"
                yield ItemProblem(name, str(error))
            else:
                yield item
        if orphans:
            yield ItemProblem(f"{path.name}", f"annotations {orphans[:5]} refer to image ids not in 'images'")

    return ImportedSet(source=str(path), class_names=names, entries=entries)


def _read_image(
    entry: object,
    annotations: Mapping[object, list[dict]],
    by_id: Mapping[int, str],
    position: Mapping[int, int],
    images_dir: Path,
    path: Path,
) -> LabelledItem:
    if not isinstance(entry, dict):
        raise ItemError("an 'images' entry is not an object")
    try:
        file_name, width, height = str(entry["file_name"]), int(entry["width"]), int(entry["height"])
    except (KeyError, TypeError, ValueError):
        raise ItemError("needs 'file_name', 'width' and 'height'") from None
    image_path = find_image(images_dir, file_name)
    check_size(image_path, width, height, f"{path.name}")
    mask = new_mask(height, width)
    own = annotations.get(entry.get("id"), [])
    # Crowd regions first, then individual instances over them; each group in file order.
    for annotation in sorted(own, key=lambda a: not a.get("iscrowd")):
        what = f"annotation {annotation.get('id')}"
        try:
            category_id = int(annotation["category_id"])
        except (KeyError, TypeError, ValueError):
            raise ItemError(f"{what} has no integer 'category_id'") from None
        if category_id not in by_id:
            raise ItemError(f"{what}: category id {category_id} is not in the file's categories")
        pixels = decode_segmentation(annotation.get("segmentation"), height, width, what)
        if category_id in position:  # decoded even when left out, so a broken annotation is reported
            mask[pixels] = position[category_id]
    name = f"{path.name} image {entry.get('id')} ({file_name})"
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
