"""The classes of one request: parsing what the user typed and naming the background.

Output label 0 is background whenever background is on (the default for `rns segment`: a user who asks for
"bus,car" expects every other pixel to be background). Background is scored with several generic "stuff"
words, the usual trick of training-free open-vocabulary segmenters, minus any word the user asked for as a
class of its own (asking for "road" takes "road" out of the background).
"""

from __future__ import annotations

from collections.abc import Sequence

from rns.errors import InputError
from rns.segmentation import BACKGROUND

# Generic scene words that stand for "none of the asked classes" (a common choice for VOC-style
# benchmarks). Each becomes one text vector of the background class; its score is the max over them.
BACKGROUND_WORDS: tuple[str, ...] = (
    "background", "sky", "wall", "tree", "wood", "grass", "road", "sea", "river", "mountain", "sand",
    "desk", "bed", "building", "cloud", "lamp", "door", "window", "wardrobe", "ceiling", "shelf",
    "curtain", "stair", "floor", "hill", "rail", "fence", "ground", "field", "sidewalk",
)


def parse_class_list(text: str | None) -> list[str]:
    """Split a comma-separated class list; names are stripped, deduplicated in order (ignoring case).

    `background` may be named but is never a duplicate of the implicit background class.
    """
    if text is None:
        return []
    return _clean_names(text.split(","), shown=text)


def clean_class_list(names: Sequence[str]) -> list[str]:
    """`parse_class_list` for a list the caller already split (an entry may still hold commas)."""
    return _clean_names([part for name in names for part in name.split(",")], shown=",".join(names))


def _clean_names(parts: Sequence[str], *, shown: str) -> list[str]:
    names: list[str] = []
    for raw in parts:
        name = " ".join(raw.split())
        if not name:
            continue
        if ";" in name:  # almost surely a list typed with the wrong separator, not one class "car;road"
            fixed = ",".join(part.strip() for part in shown.replace(";", ",").split(",") if part.strip())
            raise InputError(f"--classes {shown!r}: class names are separated by commas, not semicolons; "
                             f"write --classes \"{fixed}\"")
        # Case-insensitive: "car,Car" is one class, shown as first spelled.
        if name.casefold() != BACKGROUND and name.casefold() not in {known.casefold() for known in names}:
            names.append(name)
    if not names:
        raise InputError(
            f"--classes {shown!r} names no class; give comma-separated names, e.g. --classes \"bus,car\""
        )
    return names


def background_words(asked: list[str]) -> list[str]:
    """The background's words, without those the user asked for as classes."""
    asked_lower = {name.lower() for name in asked}
    return [word for word in BACKGROUND_WORDS if word not in asked_lower]
