"""LabelMe JSON files (one per image, as LabelMe and X-AnyLabeling save them) as semantic labels.

Each file's `shapes` are painted in file order, a later shape over an earlier one, the way LabelMe's own
label export does it: `polygon` (its points), `rectangle` (two opposite corners), `circle` (centre, then
a point on the rim). Shapes drawn with PIL like LabelMe draws them, outline included. Shapes with no area
(`point`, `line`, `linestrip`) are left out and noted. The label `__ignore__` marks pixels to ignore
(255), as in LabelMe's own conversion scripts; every other label is a class, classes ordered by first
appearance over the files sorted by name.

The image is the one embedded in the file (`imageData`, base64) when present, since that is what was
labelled, else the file `imagePath` names, relative to the JSON file, or by its name next to the JSON file
or in `--images DIR` (where LabelMe saved its files apart from the images). Only files inside the LabelMe
folder or `--images` are read: an `imagePath` or a link leading elsewhere is refused (`rns.formats.confine`).
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from rns.errors import InputError
from rns.formats.coco import image_size
from rns.formats.confine import Confinement, is_regular_file
from rns.formats.fields import class_name, describe, load_json, number_array, shorten
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
from rns.io.imageio import read_image_header

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


def _shapes(document: object) -> list[object]:
    shapes = document.get("shapes") if isinstance(document, dict) else None
    if not isinstance(shapes, list):
        raise ItemError("no 'shapes' list: is it a LabelMe file?")
    return shapes


def _load(path: Path, own_folder: Confinement) -> tuple[dict, list[object]]:
    """A LabelMe file found in the folder: only a plain file inside it (a link out of it is refused)."""
    if not own_folder.contains(path):
        raise ItemError(own_folder.outside_reason(path.name, "file"))
    if not is_regular_file(path):
        raise ItemError("not a plain file (a folder, pipe or device named .json); left out")
    document = load_json(path, "LabelMe file")
    shapes = _shapes(document)
    assert isinstance(document, dict)
    return document, shapes


def _shape_kind(shape: dict) -> object:
    return shape.get("shape_type") or "polygon"


def read_labelme(folder: str | os.PathLike, categories: Sequence[str] | None = None,
                 images_dir: str | os.PathLike | None = None) -> ImportedSet:
    """An `ImportedSet` of every LabelMe JSON file under `folder` (recursively).

    Images are read from inside `folder` or, when LabelMe saved its files elsewhere (`labelme --output`),
    from `images_dir`; an `imagePath` leading anywhere else is refused.
    """
    folder = Path(folder)
    files = _files(folder)
    if images_dir is not None and not Path(images_dir).is_dir():
        raise InputError(f"images folder {images_dir} does not exist; give the folder LabelMe's images are "
                         "in")
    own_folder = Confinement([folder])
    confinement = Confinement([folder] + ([Path(images_dir)] if images_dir is not None else []))
    found: list[str] = []
    for path in files:  # first pass: the class list, in order of first appearance
        try:
            _, shapes = _load(path, own_folder)
        except (InputError, ItemError):
            continue  # reported per item in the second pass
        for shape in shapes:
            if not isinstance(shape, dict) or _shape_kind(shape) not in AREA_SHAPES:
                continue
            try:
                name = class_name(shape.get("label"), "label")
            except ItemError:
                continue
            if name != IGNORE_NAME and name not in found:
                found.append(name)
    names = select_classes(found, categories, str(folder))
    skipped: list[str] = []

    def entries() -> Iterator[LabelledItem | ItemProblem]:
        skipped.clear()  # each pass notes afresh
        for path in files:
            try:
                yield _read_file(path, names, skipped, own_folder, confinement,
                                 Path(images_dir) if images_dir is not None else None)
            except (ItemError, InputError) as error:
                yield ItemProblem(str(path), str(error).removeprefix(f"{path}: "))

    return ImportedSet(source=str(folder), class_names=names, entries=entries, notes=skipped)


def _embedded(data: object) -> tuple[bytes, str, tuple[int, int]]:
    if not isinstance(data, str):
        raise ItemError(f"its embedded image (imageData) must be base64 text, not {describe(data)}")
    try:
        raw = base64.b64decode(data, validate=False)
    except (binascii.Error, ValueError) as error:
        raise ItemError(f"its embedded image (imageData) cannot be decoded ({error})") from None
    try:
        header = read_image_header(raw, "(imageData)", what="its embedded image")
    except InputError as error:
        raise ItemError(str(error)) from None
    return raw, "." + (header.format or "png").lower(), (header.width, header.height)


def _image(document: dict, path: Path, confinement: Confinement, images_dir: Path | None,
           ) -> tuple[Path | bytes, str, tuple[int, int]]:
    """The labelled image (embedded bytes or a file), its suffix, and its (width, height)."""
    data = document.get("imageData")
    if data:
        return _embedded(data)
    image_path = document.get("imagePath")
    if not image_path:
        raise ItemError("neither an embedded image (imageData) nor an imagePath")
    if not isinstance(image_path, str):
        raise ItemError(f"its imagePath must be text, not {describe(image_path)}")
    relative = image_path.replace("\\", "/")
    base = relative.rsplit("/", 1)[-1]
    # As written (relative to the JSON file), else by its name next to it or in --images: a path from the
    # labeller's machine ("C:/Users/...") means nothing here. Only files inside the named folders count.
    candidates = [path.parent / relative]
    if base not in ("", ".", ".."):
        candidates += [path.parent / base] + ([images_dir / base] if images_dir is not None else [])
    found = confinement.locate(
        candidates, shorten(relative), "its image",
        f"its image {shorten(relative)} is missing; put the image next to the JSON file (or give its folder "
        "with --images) or embed it",
        fix="give the folder it is in with --images, copy it next to the JSON file, or embed it",
    )
    return found, found.suffix, image_size(found)


def _read_file(path: Path, names: list[str], skipped: list[str], own_folder: Confinement,
               confinement: Confinement, images_dir: Path | None) -> LabelledItem:
    document, shapes = _load(path, own_folder)
    image, suffix, (width, height) = _image(document, path, confinement, images_dir)
    stated = (document.get("imageWidth"), document.get("imageHeight"))
    if all(isinstance(v, int) for v in stated) and stated != (width, height):
        raise ItemError(
            f"its image is {width}x{height} but the file says {stated[0]}x{stated[1]}: check that it is "
            "the image that was labelled"
        )
    canvas = Image.fromarray(new_mask(height, width))
    draw = ImageDraw.Draw(canvas)
    for number, shape in enumerate(shapes, start=1):
        if not isinstance(shape, dict):
            raise ItemError(f"shape {number} is not an object but {describe(shape)}")
        kind = _shape_kind(shape)
        if not isinstance(kind, str):
            raise ItemError(f"shape {number}'s shape_type must be text, not {describe(kind)}")
        if kind in NO_AREA_SHAPES:
            shown = describe(shape.get("label"))
            skipped.append(f"{path}: shape {number} ({kind} {shown}) has no area; left out")
            continue
        if kind not in AREA_SHAPES:
            raise ItemError(f"shape {number}: shape type {shorten(kind)!r} is not supported (use polygon, "
                            "rectangle, circle)")
        label = class_name(shape.get("label"), f"shape {number}'s label")
        what = f"shape {number} ({kind} {label!r})"
        if label != IGNORE_NAME and label not in names:
            continue  # a class left out with --categories
        value = UNLABELLED if label == IGNORE_NAME else names.index(label)
        points = number_array(shape.get("points"), what, pairs=True)
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
