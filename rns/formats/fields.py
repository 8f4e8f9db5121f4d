"""Checked reading of the values inside label files: JSON nesting bounded, every field's type and range.

Label files come from other people's tools and sometimes from nobody's: a string where a number belongs,
a list where an object belongs, `null` counts, JSON nested a hundred thousand deep. Each reader takes its
values through these helpers, which raise `ItemError` (one line, the field and what was there) so that
the entry is reported and left out while the others go on; file-level callers turn it into `InputError`.
Nothing here lets a value reach numpy, PIL or pycocotools unchecked.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from rns.errors import InputError
from rns.formats.items import ItemError
from rns.teach.mask_conventions import clean_class_name

MAX_JSON_DEPTH = 64
"""Nesting a label file may have; real exports stay under 8 (a COCO polygon sits 5 deep)."""

MAX_CLASS_NAME_CHARS = 256
"""A class name is words for a text encoder (CLIP reads 77 tokens); anything longer is not a name."""

_SHOWN_CHARS = 60
_CONTAINERS = frozenset({dict, list})  # what json.load makes containers of


def describe(value: object) -> str:
    """A short rendering of a value for a message, whatever its size (a huge string, a deep list)."""
    if isinstance(value, (dict, list)):
        return f"a {'list' if isinstance(value, list) else 'object'} of {len(value)}"
    text = "null" if value is None else str(value).lower() if isinstance(value, bool) else repr(value)
    return shorten(text)


def shorten(text: str) -> str:
    """Text from a label file for a message, cut to a readable length."""
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "..."


def check_depth(document: object, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether `document` nests at most `limit` containers deep (walked without recursion)."""
    stack: list[tuple[object, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            return False
        items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        # The element types first (a C-level pass): a list of a million coordinates holds no container.
        if _CONTAINERS & set(map(type, items)):
            stack.extend((item, depth + 1) for item in items if type(item) in _CONTAINERS)
    return True


def load_json(path: Path, what: str) -> object:
    """Parse a JSON export, or raise `InputError` naming the file (unreadable, not JSON, nested too deep)."""
    try:
        with open(path, encoding="utf-8-sig") as handle:
            document = json.load(handle)
    except FileNotFoundError:
        raise InputError(f"{path}: {what} not found; check the path") from None
    except RecursionError:
        document = None
        deep = True
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise InputError(f"{path}: not a readable {what} ({error}); give the JSON file the tool exported") \
            from None
    else:
        deep = not check_depth(document)
    if deep:
        raise InputError(f"{path}: not a usable {what}: it nests more than {MAX_JSON_DEPTH} levels deep; "
                         "give the JSON file the tool exported")
    return document


def whole_number(value: object, what: str, *, minimum: int | None = None) -> int:
    """An integer field (an integral JSON number), at least `minimum` when given."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            (isinstance(value, float) and not (math.isfinite(value) and value.is_integer())):
        raise ItemError(f"{what} must be a whole number, not {describe(value)}")
    number = int(value)
    if minimum is not None and number < minimum:
        raise ItemError(f"{what} must be at least {minimum}, not {number}")
    return number


def real_number(value: object, what: str) -> float:
    """A finite number field."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ItemError(f"{what} must be a finite number, not {describe(value)}")
    return float(value)


def number_array(value: object, what: str, *, pairs: bool) -> np.ndarray:
    """A list of finite numbers as float64: `[[x, y], ...]` as `[N, 2]` when `pairs`, else flat `[N]`."""
    try:
        array = np.asarray(value if isinstance(value, list) else None)
    except (ValueError, TypeError, OverflowError):  # ragged nesting, numbers numpy cannot hold
        array = np.empty(0, dtype=object)
    wanted = 2 if pairs else 1
    if not isinstance(value, list) or array.dtype.kind not in "iuf" or array.ndim != wanted or \
            (pairs and array.shape[1] != 2):
        shape = "a list of [x, y] pairs" if pairs else "a list of numbers"
        raise ItemError(f"{what}: its points must be {shape}, not {describe(value)}")
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        raise ItemError(f"{what} has a coordinate that is not a finite number")
    return array


def class_name(value: object, what: str) -> str:
    """A class name: text (or a bare number, as YAML reads `1`), cleaned, non-empty, of bounded length.

    `null`, booleans, lists and objects are refused rather than turned into a class named "None".
    """
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ItemError(f"{what} must be a class name (text), not {describe(value)}")
    raw = str(value)
    if len(raw) > 4 * MAX_CLASS_NAME_CHARS:  # cleaning a megabyte-long name is work for nothing
        raise ItemError(f"{what} is {len(raw):,} characters long; a class name has at most "
                        f"{MAX_CLASS_NAME_CHARS}")
    name = clean_class_name(raw)
    if not name:
        raise ItemError(f"{what} is empty; give every class a name")
    if len(name) > MAX_CLASS_NAME_CHARS:
        raise ItemError(f"{what} is {len(name):,} characters long; a class name has at most "
                        f"{MAX_CLASS_NAME_CHARS}")
    return name


def file_level(error: ItemError, path: Path) -> InputError:
    """An item-level complaint about a part every item needs (the class list): the whole file is refused."""
    return InputError(f"{path}: {error}")
