"""What every format reader produces: labelled items, per-item problems, and the class list.

A reader turns one tool's export into a stream of `LabelledItem`s (an image and an index mask whose value
i means `class_names[i]` and 255 means "unlabelled") interleaved with `ItemProblem`s for the entries it
could not use (a missing image, an unknown category, a polygon outside its image). The stream is lazy so
that a large export is never held in memory at once; the class list is known up front, because the
masks' values refer to it.

Everything downstream (teaching the memory, evaluating) takes an `ImportedSet` and never needs to know
which tool the labels came from.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rns.errors import InputError
from rns.teach.mask_conventions import IGNORE_VALUE, clean_class_name

UNLABELLED = IGNORE_VALUE
"""Mask value of pixels no annotation labels: they count for nothing (neither class nor background)."""

MAX_CLASSES = 255
"""Values 0..254 are classes and 255 is unlabelled, so one uint8 mask holds at most 255 classes."""

OUTSIDE_TOLERANCE = 1.0
"""Pixels a polygon vertex may lie outside its image before the item is refused: tools round and clamp
coordinates differently, and a vertex on the far edge (x == width) is legitimate, but a polygon well
outside its image means the annotation belongs to another image or another size."""


@dataclass(frozen=True)
class LabelledItem:
    """One labelled image: `image` is a file, or the encoded bytes of an image embedded in the export.

    `mask` is `[H, W]` uint8 at the image's size; value i is `class_names[i]` of the set, 255 unlabelled.
    `name` says where the item came from, for messages ("instances.json image 7 (street.jpg)").
    `suffix` is the file extension of embedded image bytes (".jpg"), so they can be written to a file.
    """

    name: str
    image: Path | bytes
    mask: np.ndarray
    suffix: str = ""


@dataclass(frozen=True)
class ItemProblem:
    """An entry of the export that could not be used, and why (one line naming the fix)."""

    name: str
    reason: str

    def __str__(self) -> str:
        return f"{self.name}: {self.reason}"


@dataclass
class ImportedSet:
    """The class names of an export and a way to stream its items (each call starts a fresh pass)."""

    source: str
    class_names: list[str]
    entries: Callable[[], Iterator[LabelledItem | ItemProblem]]
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.class_names:
            raise InputError(f"{self.source}: the export names no class, so there is nothing to learn")
        if len(self.class_names) > MAX_CLASSES:
            raise InputError(
                f"{self.source}: {len(self.class_names)} classes, but at most {MAX_CLASSES} fit one import; "
                "keep a subset with --categories"
            )
        if len(set(self.class_names)) != len(self.class_names):
            raise InputError(f"{self.source}: a class name appears twice in {self.class_names}")


class ItemError(Exception):
    """Raised inside a reader for a problem with one item; the reader turns it into an `ItemProblem`."""


def parse_categories(spec: str | None) -> list[str] | None:
    """`--categories "car, person"` as clean names; None keeps every class."""
    if spec is None:
        return None
    names = [clean_class_name(part) for part in spec.split(",")]
    names = [name for name in names if name]
    if not names:
        raise InputError('--categories names no class; write e.g. --categories "car,person"')
    return names


def select_classes(available: Sequence[str], wanted: Sequence[str] | None, source: str) -> list[str]:
    """The classes to keep, in the export's order; an unknown wanted name is an error (a typo, usually)."""
    if wanted is None:
        return list(available)
    unknown = [name for name in wanted if name not in available]
    if unknown:
        raise InputError(
            f"--categories names {', '.join(repr(n) for n in unknown)}, which {source} does not have "
            f"(it has: {', '.join(available)}); use names from the export"
        )
    return [name for name in available if name in wanted]


def check_points_inside(points: np.ndarray, width: int, height: int, what: str) -> None:
    """Refuse a shape with a vertex more than `OUTSIDE_TOLERANCE` pixels outside the image."""
    if points.size == 0:
        raise ItemError(f"{what} has no points")
    if not np.isfinite(points).all():
        raise ItemError(f"{what} has a coordinate that is not a number")
    low = -OUTSIDE_TOLERANCE
    xs, ys = points[:, 0], points[:, 1]
    if xs.min() < low or ys.min() < low or xs.max() > width + OUTSIDE_TOLERANCE or \
            ys.max() > height + OUTSIDE_TOLERANCE:
        raise ItemError(
            f"{what} reaches ({xs.min():.1f}..{xs.max():.1f}, {ys.min():.1f}..{ys.max():.1f}), outside the "
            f"{width}x{height} image: check that the annotation belongs to this image"
        )


def new_mask(height: int, width: int) -> np.ndarray:
    """An all-unlabelled mask."""
    return np.full((height, width), UNLABELLED, dtype=np.uint8)
