"""Colour-coded "segmentation mask" exports (CVAT, Pascal VOC and the tools that copy them).

Such an export is a folder of photos and a folder of PNG masks named like them, each mask painting every
pixel in its class's colour. The colours are given by

- a `labelmap.txt` (`--labelmap FILE`), as CVAT writes it: one `name:r,g,b:parts:actions` line per class,
  `#` starting a comment; or
- the standard Pascal VOC colour map and its 21 class names (`--labels voc`), whose extra colour
  (224, 224, 192) marks object borders and "difficult" regions to ignore (VOC's value 255).

Masks are read as colours (a palette PNG through its palette), so palette and RGB masks work alike. A
colour the map does not list is a problem for that image: silently dropping it would drop a class.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from rns.errors import InputError
from rns.formats.coco import image_size
from rns.formats.fields import class_name, shorten
from rns.formats.items import UNLABELLED, ImportedSet, ItemError, ItemProblem, LabelledItem, select_classes
from rns.io.imageio import read_image_header

Colour = tuple[int, int, int]

VOC_CLASSES: tuple[str, ...] = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
    "tvmonitor",
)
VOC_IGNORE_VALUE = 255
MAX_LABELMAP_BYTES = 1 << 20
"""A labelmap is a line per class (at most 255 fit): a larger file is not one, and is not read whole."""


def voc_colour(index: int) -> Colour:
    """The VOC colour map's colour of an index: its bits spread over the high bits of r, g and b."""
    red = green = blue = 0
    for shift in range(7, -1, -1):
        red |= ((index >> 0) & 1) << shift
        green |= ((index >> 1) & 1) << shift
        blue |= ((index >> 2) & 1) << shift
        index >>= 3
    return red, green, blue


def voc_colours() -> dict[Colour, str | None]:
    """VOC's colour -> class table; the border colour (index 255) maps to None (ignore)."""
    table: dict[Colour, str | None] = {voc_colour(i): name for i, name in enumerate(VOC_CLASSES)}
    table[voc_colour(VOC_IGNORE_VALUE)] = None
    return table


def read_labelmap(path: str | os.PathLike) -> dict[Colour, str | None]:
    """CVAT's labelmap.txt as a colour -> class table, in file order."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_LABELMAP_BYTES + 1)
        lines = data.decode("utf-8-sig").splitlines()
    except FileNotFoundError:
        raise InputError(f"{path}: labelmap not found; give the labelmap.txt of the export") from None
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: cannot read the labelmap ({error})") from None
    if len(data) > MAX_LABELMAP_BYTES:
        raise InputError(f"{path}: over {MAX_LABELMAP_BYTES:,} bytes, which no labelmap is; give the "
                         "labelmap.txt of the export")
    table: dict[Colour, str | None] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        raw_name, _, rest = line.partition(":")
        try:
            name = class_name(raw_name, "the class name")
        except ItemError as error:
            raise InputError(f"{path} line {number}: {error}") from None
        try:
            colour = tuple(int(v) for v in rest.split(":")[0].split(","))
        except ValueError:
            colour = ()
        if len(colour) != 3 or not all(0 <= v <= 255 for v in colour):
            raise InputError(f"{path} line {number}: {shorten(line.strip())!r} is not 'name:r,g,b' (e.g. "
                             "car:0,0,142)")
        if colour in table:
            raise InputError(f"{path} line {number}: colour {colour} is already {table[colour]!r}")
        table[colour] = name  # type: ignore[index]
    if not table:
        raise InputError(f"{path}: the labelmap names no class; write one 'name:r,g,b' line per class")
    return table


def _colour_mask(path: Path, lookup: dict[int, int], expected: tuple[int, int]) -> np.ndarray:
    """The mask's colours as class values; its size is checked against its image's from both headers
    before a pixel is decoded (so a small file declaring a huge canvas costs nothing)."""
    try:
        header = read_image_header(path, what="mask")
    except InputError as error:
        raise ItemError(str(error)) from None
    if (header.width, header.height) != expected:
        raise ItemError(f"mask {path} is {header.width}x{header.height} but its image is "
                        f"{expected[0]}x{expected[1]}")
    try:
        with Image.open(path) as image:
            rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError, SyntaxError, EOFError) as error:
        raise ItemError(f"mask {path} cannot be read ({error})") from None
    packed = (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]
    del rgb
    colours, inverse = np.unique(packed, return_inverse=True)
    values = np.empty(len(colours), dtype=np.uint8)
    for index, colour in enumerate(colours.tolist()):
        if colour not in lookup:
            r, g, b = colour >> 16, (colour >> 8) & 255, colour & 255
            raise ItemError(f"mask {path} has colour ({r}, {g}, {b}), which the colour map does not list")
        values[index] = lookup[colour]
    return values[inverse.reshape(packed.shape)]


def read_colour_masks(
    pairs: Sequence[tuple[Path, Path]],
    table: dict[Colour, str | None],
    source: str,
    categories: Sequence[str] | None = None,
    refused: Sequence[ItemProblem] = (),
) -> ImportedSet:
    """An `ImportedSet` of (image, colour mask) pairs under a colour -> class table (None = ignore).

    `refused` are files the pairing would not read (links out of their folder), reported first.
    """
    all_names = [name for name in table.values() if name is not None]
    names = select_classes(list(dict.fromkeys(all_names)), categories, source)
    lookup = {
        (r << 16) | (g << 8) | b: (names.index(name) if name in names else UNLABELLED)
        for (r, g, b), name in table.items()
    }

    def entries() -> Iterator[LabelledItem | ItemProblem]:
        yield from refused
        for image, mask_path in pairs:
            try:
                mask = _colour_mask(mask_path, lookup, image_size(image))
            except ItemError as error:
                yield ItemProblem(str(image), str(error))
            else:
                yield LabelledItem(name=str(image), image=image, mask=mask)

    return ImportedSet(source=source, class_names=names, entries=entries)
