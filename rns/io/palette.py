"""The colour of each class, shared by the label PNGs, the overlays, `classes.json` and `rns ui`.

A class's colour follows its name, not its place in the list: "car" is the same colour whether it was
named first (`--classes car,road`) or second (`road, car` in the ui), in every file, run and page.
Background is black. Each name hashes to one of `SLOTS` colours: the first are hand-picked to stay
apart, the rest walk the hue circle by the golden angle. Within one class list every class must differ,
so a name whose slot an earlier name of the list took moves to the next free slot; only then does its
colour depend on the list. `class_colour(id)` (by position) stays for callers that have no names.
"""

from __future__ import annotations

import colorsys
import hashlib
from collections.abc import Sequence

Colour = tuple[int, int, int]

BACKGROUND_COLOUR: Colour = (0, 0, 0)

# Saturated, mutually distinct, and none close to black (background) or to each other.
_FIRST: tuple[Colour, ...] = (
    (230, 25, 75),  # red
    (60, 180, 75),  # green
    (0, 130, 200),  # blue
    (255, 225, 25),  # yellow
    (245, 130, 48),  # orange
    (145, 30, 180),  # purple
    (70, 240, 240),  # cyan
    (240, 50, 230),  # magenta
    (210, 245, 60),  # lime
    (250, 190, 212),  # pink
    (0, 128, 128),  # teal
    (220, 190, 255),  # lavender
    (170, 110, 40),  # brown
    (255, 250, 200),  # beige
    (128, 0, 0),  # maroon
    (170, 255, 195),  # mint
    (128, 128, 0),  # olive
    (255, 215, 180),  # apricot
    (0, 0, 128),  # navy
    (128, 128, 128),  # grey
)

_GOLDEN_ANGLE = 0.381966  # fraction of the hue circle


def class_colour(class_id: int) -> Colour:
    """The colour of one class id (0 = background = black)."""
    if class_id < 0:
        raise ValueError(f"class ids are non-negative, got {class_id}")
    if class_id == 0:
        return BACKGROUND_COLOUR
    if class_id <= len(_FIRST):
        return _FIRST[class_id - 1]
    step = class_id - len(_FIRST)
    hue = (step * _GOLDEN_ANGLE) % 1.0
    # Alternate lightness/saturation bands so colours with similar hues still differ.
    value = (0.95, 0.75, 0.55)[step % 3]
    saturation = (0.85, 0.65)[step % 2]
    red, green, blue = colorsys.hsv_to_rgb(hue, saturation, value)
    return (round(red * 255), round(green * 255), round(blue * 255))


def class_colours(count: int) -> list[Colour]:
    """Colours of ids 0..count-1."""
    return [class_colour(i) for i in range(count)]


SLOTS = 64
BACKGROUND_NAME = "background"


def _slot_of(name: str) -> int:
    """The colour slot a name prefers (0..SLOTS-1), from its case- and space-insensitive spelling."""
    key = " ".join(name.split()).casefold()
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=4).digest(), "big") % SLOTS


def is_background(name: str) -> bool:
    """Whether a class name is the background class (any case or spacing): drawn black, left untinted."""
    return " ".join(name.split()).casefold() == BACKGROUND_NAME


def named_colours(class_names: Sequence[str]) -> list[Colour]:
    """The colour of each class of a list, by name: background black, the others distinct.

    Beyond `SLOTS` classes the extra ones take colours by position past the slots (still distinct).
    """
    taken: set[int] = set()
    colours: list[Colour] = []
    for position, name in enumerate(class_names):
        if is_background(name):
            colours.append(BACKGROUND_COLOUR)
            continue
        if len(taken) >= SLOTS:
            colours.append(class_colour(SLOTS + 1 + position))
            continue
        slot = _slot_of(name)
        while slot in taken:
            slot = (slot + 1) % SLOTS
        taken.add(slot)
        colours.append(class_colour(slot + 1))
    return colours


def png_palette(count: int | Sequence[Colour]) -> list[int]:
    """A flat 768-entry PIL palette: ids < count get their colour (by id, or from the given colours).

    A mode "P" PNG holds at most 256 palette entries; ids above 255 cannot be stored in one.
    """
    colours = class_colours(count) if isinstance(count, int) else list(count)
    if len(colours) > 256:
        raise ValueError(f"a palette PNG holds at most 256 classes, got {len(colours)}")
    flat: list[int] = []
    for class_id in range(256):
        flat.extend(colours[class_id] if class_id < len(colours) else BACKGROUND_COLOUR)
    return flat


def hex_colour(colour: Colour) -> str:
    """'#rrggbb' for JSON readers and legends."""
    return "#{:02x}{:02x}{:02x}".format(*colour)
