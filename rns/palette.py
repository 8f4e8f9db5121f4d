"""The fixed colour of each class id, shared by the label PNGs, the overlays and `classes.json`.

Colours depend only on the class id, never on the image, so class 3 has the same colour in every file of
a run and across runs. Id 0 (background) is black. The first ids take hand-picked colours that stay apart
for the common case of a handful of classes; further ids walk the hue circle by the golden angle, which
keeps successive colours distinct for as many classes as anyone will name.
"""

from __future__ import annotations

import colorsys

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


def png_palette(count: int) -> list[int]:
    """A flat 768-entry PIL palette: ids < count get their class colour, the rest black.

    A mode "P" PNG holds at most 256 palette entries; ids above 255 cannot be stored in one.
    """
    if count > 256:
        raise ValueError(f"a palette PNG holds at most 256 classes, got {count}")
    flat: list[int] = []
    for class_id in range(256):
        flat.extend(class_colour(class_id) if class_id < count else BACKGROUND_COLOUR)
    return flat


def hex_colour(colour: Colour) -> str:
    """'#rrggbb' for JSON readers and legends."""
    return "#{:02x}{:02x}{:02x}".format(*colour)
