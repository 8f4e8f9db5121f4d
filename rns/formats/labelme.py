"""LabelMe JSON files (one per image, as LabelMe and X-AnyLabeling save them) as semantic labels.

Each file's `shapes` are painted in file order, a later shape over an earlier one, the way LabelMe's own
label export does it: `polygon` (its points), `rectangle` (two opposite corners), `circle` (centre, then
a point on the rim). Shapes drawn with PIL like LabelMe draws them, outline included. Shapes with no area
(`point`, `line`, `linestrip`) are left out and noted. The label `__ignore__` marks pixels to ignore
(255), as in LabelMe's own conversion scripts; every other label is a class, classes ordered by first
appearance over the files sorted by name.

The image is the one embedded in the file (`imageData`, base64) when present, since that is what was
labelled, else the file `imagePath` names, relative to the JSON file.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from rns.errors import InputError
from rns.formats.coco import image_size, load_json
from rns.formats.items import (
    UNLABELLED,
    ImportedSet,
    ItemError,
    ItemProblem,
    LabelledItem,
    check_points_inside,
    new_mask,
    select_classes,
)
from rns.mask_conventions import clean_class_name

IGNORE_NAME = "__ignore__"
AREA_SHAPES = ("polygon", "rectangle", "circle")
NO_AREA_SHAPES = ("point", "line", "linestrip", "points")


def _files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise InputError(f"LabelMe folder {folder} does not exist or is not a folder: check --labelme")
    files = sorted(folder.rglob("*.json"))
    if not files:
        raise InputError(f"{folder} holds no LabelMe .json files; give the folder LabelMe saved into")
    return files


def _shapes(document: object) -> list[dict]:
    shapes = document.get("shapes") if isinstance(document, dict) else None
    if not isinstance(shapes, list):
        raise ItemError("no 'shapes' list: is it a LabelMe file?")
    return [shape for shape in shapes if isinstance(shape, dict)]


def read_labelme(folder: str | os.PathLike, categories: Sequence[str] | None = None) -> ImportedSet:
    """An `ImportedSet` of every LabelMe JSON file under `folder` (recursively)."""
    folder = Path(folder)
    files = _files(folder)
    found: list[str] = []
    for path in files:  # first pass: the class list, in order of first appearance
        try:
            shapes = _shapes(load_json(path, "LabelMe file"))
        except (InputError, ItemError):
            continue  # reported per item in the second pass
        for shape in shapes:
            name = clean_class_name(str(shape.get("label", "")))
            if name and name != IGNORE_NAME and name not in found and shape.get("shape_type", "polygon") \
                    in AREA_SHAPES:
                found.append(name)
    names = select_classes(found, categories, str(folder))
    skipped: list[str] = []

    def entries() -> Iterator[LabelledItem | ItemProblem]:
        skipped.clear()  # each pass notes afresh
        for path in files:
            try:
                yield _read_file(path, names, skipped)
            except (ItemError, InputError) as error:
                yield ItemProblem(str(path), str(error).removeprefix(f"{path}: "))

    return ImportedSet(source=str(folder), class_names=names, entries=entries, notes=skipped)


def _image(document: dict, path: Path) -> tuple[Path | bytes, str, tuple[int, int]]:
    """The labelled image (embedded bytes or a file), its suffix, and its (width, height)."""
    data = document.get("imageData")
    if data:
        try:
            raw = base64.b64decode(data, validate=False)
            with Image.open(io.BytesIO(raw)) as image:
                size, suffix = image.size, "." + (image.format or "png").lower()
        except (binascii.Error, OSError, ValueError) as error:
            raise ItemError(f"its embedded image (imageData) cannot be decoded ({error})") from None
        return raw, suffix, size
    image_path = document.get("imagePath")
    if not image_path:
        raise ItemError("neither an embedded image (imageData) nor an imagePath")
    relative = str(image_path).replace("\\", "/")
    # As written (relative to the JSON file), else by its name next to it: a path from the labeller's
    # machine ("C:/Users/...") means nothing here.
    for candidate in (path.parent / relative, path.parent / relative.rsplit("/", 1)[-1]):
        if candidate.is_file():
            return candidate, candidate.suffix, image_size(candidate)
    raise ItemError(f"its image {relative} is missing; put the image next to the JSON file or embed it")


def _read_file(path: Path, names: list[str], skipped: list[str]) -> LabelledItem:
    document = load_json(path, "LabelMe file")
    shapes = _shapes(document)
    assert isinstance(document, dict)
    image, suffix, (width, height) = _image(document, path)
    stated = (document.get("imageWidth"), document.get("imageHeight"))
    if all(isinstance(v, int) for v in stated) and stated != (width, height):
        raise ItemError(
            f"its image is {width}x{height} but the file says {stated[0]}x{stated[1]}: check that it is "
            "the image that was labelled"
        )
    canvas = Image.fromarray(new_mask(height, width))
    draw = ImageDraw.Draw(canvas)
    for number, shape in enumerate(shapes, start=1):
        kind = str(shape.get("shape_type") or "polygon")
        label = clean_class_name(str(shape.get("label", "")))
        what = f"shape {number} ({kind} {label!r})"
        if kind in NO_AREA_SHAPES:
            skipped.append(f"{path}: {what} has no area; left out")
            continue
        if kind not in AREA_SHAPES:
            raise ItemError(f"{what}: shape type {kind!r} is not supported (use polygon, rectangle, circle)")
        if label != IGNORE_NAME and label not in names:
            continue  # a class left out with --categories
        value = UNLABELLED if label == IGNORE_NAME else names.index(label)
        points = np.asarray(shape.get("points") or [], dtype=np.float64).reshape(-1, 2)
        _draw(draw, kind, points, value, width, height, what)
    mask = np.asarray(canvas, dtype=np.uint8).copy()
    return LabelledItem(name=str(path), image=image, mask=mask, suffix=suffix)


def _draw(draw: ImageDraw.ImageDraw, kind: str, points: np.ndarray, value: int, width: int, height: int,
          what: str) -> None:
    check_points_inside(points, width, height, what)
    if kind == "polygon":
        if len(points) < 3:
            raise ItemError(f"{what} needs at least 3 points")
        draw.polygon([tuple(p) for p in points], fill=value, outline=value)
    elif kind == "rectangle":
        if len(points) != 2:
            raise ItemError(f"{what} needs 2 corner points")
        (x1, y1), (x2, y2) = points
        draw.rectangle([min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)], fill=value, outline=value)
    else:
        if len(points) != 2:
            raise ItemError(f"{what} needs a centre and a rim point")
        (cx, cy), (rx, ry) = points
        radius = float(np.hypot(rx - cx, ry - cy))
        if cx - radius < -width or cx + radius > 2 * width:
            raise ItemError(f"{what} reaches far outside the image")
        draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=value, outline=value)
