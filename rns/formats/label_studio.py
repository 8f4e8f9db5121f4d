"""Label Studio's JSON export (the full "JSON" format, a list of tasks) as semantic labels.

Per task, the first annotation not marked cancelled is used (several annotators' versions are not
merged). Its results are painted in order, later over earlier: `brushlabels` (Label Studio's own RLE,
decoded by label-studio-sdk's converter; a pixel is the class where the brush's alpha is at least 128),
`polygonlabels` (points in percent of the image) and unrotated `rectanglelabels`. Other result types
(choices, key points, text) carry no pixels and are left out. Classes are the label names in order of
first appearance.

The image is found in `--images DIR` by the base name of the task's image URL; Label Studio prefixes
uploaded files with 8 hex digits and a dash ("1a2b3c4d-street.jpg"), so the name without that prefix is
tried too. Only files inside `--images` are read, links followed (`rns.formats.confine`).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

import numpy as np
from PIL import Image, ImageDraw

from rns.errors import InputError
from rns.formats import _deps
from rns.formats.coco import check_size, image_size
from rns.formats.confine import Confinement
from rns.formats.fields import (
    class_name,
    describe,
    load_json,
    number_array,
    real_number,
    shorten,
    whole_number,
)
from rns.formats.items import (
    ImportedSet,
    ItemError,
    ItemProblem,
    LabelledItem,
    check_points_inside,
    new_mask,
    select_classes,
)

PIXEL_TYPES = ("brushlabels", "polygonlabels", "rectanglelabels")
_UPLOAD_PREFIX = re.compile(r"^[0-9a-f]{8}-")


def _annotation(task: dict) -> dict | None:
    annotations = task.get("annotations")
    if annotations is None:
        return None
    if not isinstance(annotations, list):
        raise ItemError(f"'annotations' must be a list, not {describe(annotations)}")
    for annotation in annotations:
        if isinstance(annotation, dict) and not annotation.get("was_cancelled"):
            return annotation
    return None


def _results(task: object) -> list[dict]:
    if not isinstance(task, dict):
        return []
    annotation = _annotation(task)
    results = annotation.get("result") if annotation else None
    if results is not None and not isinstance(results, list):
        raise ItemError(f"an annotation's 'result' must be a list, not {describe(results)}")
    return [r for r in results or [] if isinstance(r, dict) and r.get("type") in PIXEL_TYPES]


def _value(result: dict) -> dict:
    value = result.get("value")
    if not isinstance(value, dict):
        raise ItemError(f"a {result['type']} result's 'value' must be an object, not {describe(value)}")
    return value


def _label(result: dict) -> str:
    names = _value(result).get(result["type"])
    if names is None or names == []:
        return ""
    if not isinstance(names, list):
        raise ItemError(f"a {result['type']} result's labels must be a list of names, not {describe(names)}")
    return class_name(names[0], f"a {result['type']} result's label")


def read_label_studio(
    path: str | os.PathLike, images_dir: str | os.PathLike, categories: Sequence[str] | None = None
) -> ImportedSet:
    """An `ImportedSet` of every task of a Label Studio JSON export, images found in `images_dir`."""
    path, images_dir = Path(path), Path(images_dir)
    tasks = load_json(path, "Label Studio export")
    if not isinstance(tasks, list):
        raise InputError(f"{path}: a Label Studio JSON export is a list of tasks; export as 'JSON'")
    if not images_dir.is_dir():
        raise InputError(f"images folder {images_dir} does not exist; give the labelled images with --images")
    found: list[str] = []
    for task in tasks:
        with contextlib.suppress(ItemError):  # a broken task is reported when it is read
            for label in [_label(result) for result in _results(task)]:
                if label and label not in found:
                    found.append(label)
    names = select_classes(found, categories, str(path))
    confinement = Confinement([images_dir])

    def entries() -> Iterator[LabelledItem | ItemProblem]:
        for number, task in enumerate(tasks, start=1):
            task_id = task.get("id", number) if isinstance(task, dict) else number
            name = f"{path.name} task {shorten(task_id) if isinstance(task_id, str) else describe(task_id)}"
            try:
                image, mask = _read_task(task, images_dir, names, confinement)
            except ItemError as error:
                yield ItemProblem(name, str(error))
            else:
                yield LabelledItem(name=f"{name} ({image.name})", image=image, mask=mask)

    return ImportedSet(source=str(path), class_names=names, entries=entries)


def _image_path(task: dict, images_dir: Path, confinement: Confinement) -> Path:
    data = task.get("data") if isinstance(task.get("data"), dict) else {}
    url = next((str(v) for v in data.values() if isinstance(v, str)), "")
    if not url:
        raise ItemError("the task's data names no image")
    try:
        parsed = urlparse(url)
        local = parse_qs(parsed.query).get("d")  # local storage: /data/local-files/?d=folder/name.jpg
    except ValueError:
        raise ItemError(f"the task's image URL {shorten(url)!r} cannot be parsed") from None
    base = Path(unquote(local[0] if local else parsed.path)).name
    candidates = [images_dir / name for name in dict.fromkeys((base, _UPLOAD_PREFIX.sub("", base))) if name]
    return confinement.locate(candidates, repr(shorten(base)), "image",
                              f"image {shorten(base)!r} not found in {images_dir}; check --images")


def _read_task(task: object, images_dir: Path, names: list[str], confinement: Confinement,
               ) -> tuple[Path, np.ndarray]:
    if not isinstance(task, dict):
        raise ItemError("a task is not an object")
    results = _results(task)
    image = _image_path(task, images_dir, confinement)
    if not results:
        width, height = image_size(image)
        return image, new_mask(height, width)
    width = whole_number(results[0].get("original_width", 0), "'original_width'")
    height = whole_number(results[0].get("original_height", 0), "'original_height'")
    check_size(image, width, height, "the task")
    mask = new_mask(height, width)
    for number, result in enumerate(results, start=1):
        label = _label(result)
        if label not in names:
            continue
        what = f"result {number} ({result['type']} {label!r})"
        value = _value(result)
        if result["type"] == "brushlabels":
            mask[_brush(value, width, height, what)] = names.index(label)
            continue
        canvas = Image.new("L", (width, height), 0)
        draw = ImageDraw.Draw(canvas)
        scale = np.array([width / 100.0, height / 100.0])
        if result["type"] == "polygonlabels":
            points = number_array(value.get("points"), what, pairs=True) * scale
            if len(points) < 3:
                raise ItemError(f"{what} needs at least 3 points")
        else:
            if real_number(value.get("rotation") or 0.0, f"{what}'s rotation") != 0.0:
                raise ItemError(f"{what} is rotated; rotated rectangles are not supported")
            x, y = (real_number(value.get(key, 0), f"{what}'s {key}") for key in ("x", "y"))
            w, h = (real_number(value.get(key, 0), f"{what}'s {key}") for key in ("width", "height"))
            points = np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]]) * scale
        check_points_inside(points, width, height, what)
        draw.polygon([tuple(p) for p in points], fill=1, outline=1)
        mask[np.asarray(canvas, dtype=bool)] = names.index(label)
    return image, mask


def _brush_length(rle: list) -> int | None:
    """The number of values a brush RLE declares (its first 32 bits), read before the decoder allocates
    them; None when the stream does not start with four bytes."""
    head = rle[:4]
    if len(head) < 4 or not all(type(b) is int and 0 <= b <= 255 for b in head):
        return None
    return int.from_bytes(bytes(head), "big")


def _brush(value: dict, width: int, height: int, what: str) -> np.ndarray:
    brush = _deps.label_studio_brush()
    rle = value.get("rle")
    if not isinstance(rle, list) or not rle:
        raise ItemError(f"{what} has no 'rle' list")
    declared = _brush_length(rle)
    if declared != width * height * 4:  # the decoder allocates what the stream declares: check it first
        shown = "no readable length" if declared is None else f"{declared // 4} pixels"
        raise ItemError(f"{what}: its brush RLE declares {shown}, the image has {width * height}")
    try:
        flat = brush.decode_rle(rle)
    except Exception as error:  # the SDK's decoder raises whatever a truncated stream gives it
        raise ItemError(f"{what}: its brush RLE cannot be decoded ({type(error).__name__})") from None
    if flat.size != width * height * 4:
        raise ItemError(f"{what}: its brush RLE holds {flat.size // 4} pixels, the image {width * height}")
    return flat.reshape(height, width, 4)[:, :, 3] >= 128
