"""Small valid exports of every import format, built in a test's folder, with an `outside/` folder beside
them that no import may read (tests/formats/test_formats_hostile.py and test_formats_fuzz.py).

Each export labels three photos (a, b, c: distinct pictures, 48x32) with one class region each, so a test
can break one item and check that the two others still come through unchanged.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import sys
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from rns.formats.sources import ImportRequest

DATA = Path(__file__).resolve().parent / "data" / "formats"
STEMS = ("a", "b", "c")
CLASSES = ("car", "road")
WIDTH, HEIGHT = 48, 32
KINDS = ("coco", "labelme", "label_studio", "yolo", "colour")


@dataclass
class Export:
    """One export: `root` is the only folder an import may read; `request` imports it."""

    kind: str
    root: Path
    request: ImportRequest
    outside: Path  # a folder beside `root` holding `secret.jpg` (a valid photo) and no `missing.jpg`
    images: dict[str, Path] = field(default_factory=dict)  # stem -> the photo of that item

    @property
    def secret(self) -> Path:
        return self.outside / "secret.jpg"

    @property
    def missing(self) -> Path:
        return self.outside / "missing.jpg"


def _photos(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    photos = {}
    for number, stem in enumerate(STEMS, start=1):
        photos[stem] = folder / f"{stem}.jpg"
        shutil.copy(DATA / "images" / f"street{number}.jpg", photos[stem])
    return photos


def _box(index: int) -> tuple[int, int, int, int]:
    """x0, y0, x1, y1 of item `index`'s labelled rectangle (pixels)."""
    return 4 + 4 * index, 4 + 2 * index, 30 + 4 * index, 20 + 2 * index


def _coco(root: Path) -> tuple[ImportRequest, dict[str, Path]]:
    photos = _photos(root / "images")
    images, annotations = [], []
    for index, stem in enumerate(STEMS):
        x0, y0, x1, y1 = _box(index)
        images.append({"id": index + 1, "file_name": f"{stem}.jpg", "width": WIDTH,
                       "height": HEIGHT})
        annotations.append({"id": index + 1, "image_id": index + 1, "category_id": 1 + index % 2,
                            "iscrowd": 0,
                            "segmentation": [[x0, y0, x1, y0, x1, y1, x0, y1]]})
    document = {"images": images, "annotations": annotations,
                "categories": [{"id": 1, "name": "car"}, {"id": 2, "name": "road"}]}
    (root / "instances.json").write_text(json.dumps(document))
    return ImportRequest(coco=root / "instances.json", images_dir=root / "images"), photos


def _labelme(root: Path) -> tuple[ImportRequest, dict[str, Path]]:
    photos = _photos(root)
    for index, stem in enumerate(STEMS):
        x0, y0, x1, y1 = _box(index)
        shape = {"label": CLASSES[index % 2], "points": [[x0, y0], [x1, y1]], "shape_type": "rectangle"}
        document = {"shapes": [shape], "imagePath": f"{stem}.jpg", "imageData": None, "imageWidth": WIDTH,
                    "imageHeight": HEIGHT}
        (root / f"{stem}.json").write_text(json.dumps(document))
    return ImportRequest(labelme=root), photos


def _label_studio(root: Path) -> tuple[ImportRequest, dict[str, Path]]:
    photos = _photos(root / "images")
    tasks = []
    for index, stem in enumerate(STEMS):
        x0, y0, x1, y1 = _box(index)
        value = {"x": 100 * x0 / WIDTH, "y": 100 * y0 / HEIGHT, "width": 100 * (x1 - x0) / WIDTH,
                 "height": 100 * (y1 - y0) / HEIGHT, "rotation": 0,
                 "rectanglelabels": [CLASSES[index % 2]]}
        result = {"type": "rectanglelabels", "original_width": WIDTH, "original_height": HEIGHT,
                  "value": value}
        tasks.append({"id": index + 1, "data": {"image": f"/data/upload/1/0a1b2c3d-{stem}.jpg"},
                      "annotations": [{"id": index + 1, "result": [result]}]})
    (root / "export.json").write_text(json.dumps(tasks))
    return ImportRequest(label_studio=root / "export.json", images_dir=root / "images"), photos


def _yolo(root: Path) -> tuple[ImportRequest, dict[str, Path]]:
    photos = _photos(root / "images")
    (root / "labels").mkdir()
    (root / "data.yaml").write_text("train: images\nval: images\nnc: 2\nnames:\n  0: car\n  1: road\n")
    for index, stem in enumerate(STEMS):
        x0, y0, x1, y1 = _box(index)
        corners = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
        numbers = " ".join(f"{x / WIDTH:.6f} {y / HEIGHT:.6f}" for x, y in corners)
        (root / "labels" / f"{stem}.txt").write_text(f"{index % 2} {numbers}\n")
    return ImportRequest(yolo=root), photos


COLOURS = {"background": (0, 0, 0), "car": (250, 50, 83), "road": (128, 64, 128)}


def _colour(root: Path) -> tuple[ImportRequest, dict[str, Path]]:
    photos = _photos(root / "JPEGImages")
    (root / "SegmentationClass").mkdir()
    (root / "labelmap.txt").write_text("".join(f"{name}:{','.join(map(str, rgb))}::\n"
                                               for name, rgb in COLOURS.items()))
    for index, stem in enumerate(STEMS):
        x0, y0, x1, y1 = _box(index)
        mask = np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)
        mask[y0:y1, x0:x1] = COLOURS[CLASSES[index % 2]]
        Image.fromarray(mask).save(root / "SegmentationClass" / f"{stem}.png")
    request = ImportRequest(labelmap=root / "labelmap.txt", images_dir=root / "JPEGImages",
                            masks_dir=root / "SegmentationClass")
    return request, photos


_BUILDERS = {"coco": _coco, "labelme": _labelme, "label_studio": _label_studio, "yolo": _yolo,
             "colour": _colour}


def build_export(folder: Path, kind: str) -> Export:
    """A fresh export of `kind` in `folder/export`, and `folder/outside` with a photo no import may read."""
    root = folder / "export"
    root.mkdir(parents=True)
    outside = folder / "outside"
    outside.mkdir(exist_ok=True)
    shutil.copy(DATA / "images" / "street4.jpg", outside / "secret.jpg")
    request, photos = _BUILDERS[kind](root)
    return Export(kind=kind, root=root, request=request, outside=outside, images=photos)


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares `width` x `height` pixels (its pixel data is a token few bytes)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


# ------------------------------------------------------------------------------ watching what is opened
# (allowed folders, opens outside them), innermost last
_WATCHED: list[tuple[tuple[str, ...], list[str]]] = []
_MODULE_SUFFIXES = (".py", ".pyc", ".so", ".pth")  # a lazy import opening its own module is no label file


def _audit(event: str, args: tuple) -> None:
    if event != "open" or not _WATCHED or isinstance(args[0], int):
        return
    target = os.path.realpath(os.fsdecode(args[0]))
    allowed, outside = _WATCHED[-1]
    if not target.endswith(_MODULE_SUFFIXES) and not any(
            target == folder or target.startswith(folder + os.sep) for folder in allowed):
        outside.append(target)


@contextmanager
def opens_outside(*allowed: Path | str) -> Iterator[list[str]]:
    """Within the block, every file opened outside `allowed` (links followed) is listed in the result.

    Uses an audit hook (`sys.addaudithook`, installed once per process and idle outside the block), so it
    sees every `open` of Python code and of PIL, whichever function did it.
    """
    global _HOOKED
    if not _HOOKED:
        sys.addaudithook(_audit)
        _HOOKED = True
    outside: list[str] = []
    _WATCHED.append((tuple(os.path.realpath(folder) for folder in allowed), outside))
    try:
        yield outside
    finally:
        _WATCHED.pop()


_HOOKED = False
