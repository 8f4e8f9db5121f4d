"""Mask conventions: how the values of a user's mask file become class labels.

Two conventions cover what people have on disk:

- a *binary* mask (values {0, 1} or {0, 255}) plus one class name (`--class bus`): nonzero pixels are
  the class, zero pixels are unlabelled. Zero is not turned into "background" because a mask drawn to
  show one object says nothing about what the rest of the image is; a user who did label background
  uses an index mask and maps it (`--labels "0=background,1=bus"`).
- an *index* (or palette) mask plus a mapping from values to names (`--labels "0=sky,1=road"` or
  `--classes-file classes.txt`, line i naming value i). Value 255 means "ignore" (it counts for
  nothing) unless the mapping names it. Every other value present in the mask must be mapped: a value
  silently dropped would be a class silently missing from the memory.

`LabelMapping.label_map(mask, path)` turns a mask array into a label map of class positions (indices
into `mapping.class_names`) with `IGNORE_LABEL` for pixels that belong to no class, checking the mask
on the way; every problem is an `InputError` with one line naming the file and the fix.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rns.errors import InputError

IGNORE_VALUE = 255
"""Mask value meaning "not labelled, counts for nothing" in index masks (the common convention)."""

IGNORE_LABEL = -1
"""Label-map value for pixels of no class; -1 rather than 255 so that any number of classes fits."""

_MAX_LISTED_VALUES = 12
_LABELS_EXAMPLE = '--labels "0=background,1=bus"'


def clean_class_name(raw: str) -> str:
    """Strip and collapse inner whitespace, so "sign  symbol " and "sign symbol" are one class."""
    return " ".join(raw.split())


def _listed(values: np.ndarray | list[int]) -> str:
    """Values for an error message, shortened when there are many."""
    values = [int(v) for v in values]
    shown = ", ".join(str(v) for v in values[:_MAX_LISTED_VALUES])
    return shown + (f", ... ({len(values)} values)" if len(values) > _MAX_LISTED_VALUES else "")


@dataclass(frozen=True)
class LabelMapping:
    """How mask values map to class names.

    `values` maps a mask value to a class name; several values may share a name (merged into one
    class). `binary` marks the one-class convention, where the mapping is decided per mask: 1 is the
    class when the mask has any 1 (then 255 is ignore), else 255 is.
    """

    values: dict[int, str]
    binary: bool = False

    # ----------------------------------------------------------------- constructors
    @classmethod
    def single_class(cls, name: str) -> LabelMapping:
        """A binary mask whose nonzero pixels are `name` (`--class NAME`)."""
        clean = clean_class_name(name)
        if not clean:
            raise InputError("--class needs a non-empty class name, e.g. --class bus")
        return cls(values={1: clean, IGNORE_VALUE: clean}, binary=True)

    @classmethod
    def parse(cls, spec: str) -> LabelMapping:
        """Parse `--labels "0=background,1=bus"` (value=name pairs, comma-separated)."""
        values: dict[int, str] = {}
        for item in spec.split(","):
            if not item.strip():
                continue
            value_text, sep, name = item.partition("=")
            if not sep:
                raise InputError(
                    f"--labels {spec!r}: {item.strip()!r} is not VALUE=NAME; write e.g. {_LABELS_EXAMPLE}"
                )
            try:
                value = int(value_text.strip())
            except ValueError:
                raise InputError(
                    f"--labels {spec!r}: {value_text.strip()!r} is not a mask value; values are whole"
                    f" numbers, e.g. {_LABELS_EXAMPLE}"
                ) from None
            if value > IGNORE_VALUE:  # a typo for an 8-bit mask, whose values stop at 255
                raise InputError(
                    f"--labels {spec!r}: value {value} cannot be in an 8-bit mask (0-255); check the value "
                    "(a 16-bit mask with more classes: --classes-file FILE, line i naming value i)"
                )
            cls._add(values, value, name, where=f"--labels {spec!r}")
        if not values:
            raise InputError(f"--labels {spec!r} maps no value; write e.g. {_LABELS_EXAMPLE}")
        return cls(values=values)

    @classmethod
    def from_classes_file(cls, path: str | os.PathLike) -> LabelMapping:
        """Read a classes file: one class name per line, line i (from 0) naming mask value i.

        Trailing blank lines are allowed; a blank line in the middle is refused, since it would shift
        every later class onto the wrong value.
        """
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            raise InputError(
                f"{path}: classes file not found; give a text file with one class name per line"
            ) from None
        except (OSError, UnicodeDecodeError) as error:
            raise InputError(
                f"{path}: cannot read the classes file ({error}); give a UTF-8 text file"
            ) from None
        lines = text.splitlines()
        while lines and not lines[-1].strip():
            lines.pop()
        if not lines:
            raise InputError(
                f"{path}: the classes file is empty; write one class name per line (line 1 = value 0)"
            )
        values: dict[int, str] = {}
        for index, line in enumerate(lines):
            cls._add(values, index, line, where=f"{path} line {index + 1}")
        return cls(values=values)

    @staticmethod
    def _add(values: dict[int, str], value: int, raw_name: str, *, where: str) -> None:
        name = clean_class_name(raw_name)
        if not name:
            raise InputError(f"{where}: value {value} maps to an empty class name; give every value a name")
        if value < 0:
            raise InputError(f"{where}: mask values are never negative ({value}); use 0, 1, 2, ...")
        # Class names are case-insensitive: "Car" after "car" is the same class, shown as first spelled.
        name = next((known for known in values.values() if known.casefold() == name.casefold()), name)
        if value in values and values[value] != name:
            raise InputError(
                f"{where}: value {value} is mapped twice ({values[value]!r} and {name!r});"
                " map each value once"
            )
        values[value] = name

    # ----------------------------------------------------------------- recording
    def to_meta(self) -> str:
        """This mapping as a short JSON string, recorded with each memory entry (`rns memory audit` reads
        the mask again and needs to know what its values meant)."""
        values = {str(value): name for value, name in sorted(self.values.items())}
        return json.dumps({"binary": self.binary, "values": values}, ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_meta(cls, text: str) -> LabelMapping:
        """The mapping `to_meta` recorded; ValueError when `text` is not one."""
        record = json.loads(text)
        values = {int(value): str(name) for value, name in record["values"].items()}
        return cls(values=values, binary=bool(record["binary"]))

    # ----------------------------------------------------------------- queries
    @property
    def class_names(self) -> list[str]:
        """Distinct class names in order of their smallest value: the order of the label map's labels."""
        names: list[str] = []
        for value in sorted(self.values):
            if self.values[value] not in names:
                names.append(self.values[value])
        return names

    def label_map(self, mask: np.ndarray, path: str | os.PathLike) -> np.ndarray:
        """Turn a mask `[H, W]` into class positions `[H, W]` int32 (`IGNORE_LABEL` for no class).

        Raises `InputError` naming `path` when the mask has unmapped values or labels nothing.
        """
        if mask.ndim != 2:
            raise InputError(f"{path}: a mask must be one channel [H, W], got shape {tuple(mask.shape)}")
        present = np.unique(mask)
        if self.binary:
            values = self._binary_values(present, path)
        else:
            values = self.values
            unmapped = [int(v) for v in present if int(v) not in values and int(v) != IGNORE_VALUE]
            if unmapped:
                raise InputError(
                    f"{path}: mask values {_listed(unmapped)} have no class; add them to --labels "
                    f"(e.g. \"{unmapped[0]}=NAME\") or to the classes file (line {unmapped[0] + 1})"
                    + ("" if len(present) > 2 else ", or use --class NAME for a binary mask")
                )
        names = self.class_names
        lookup_size = int(max(int(present.max()) if present.size else 0, max(values))) + 1
        lookup = np.full(lookup_size, IGNORE_LABEL, dtype=np.int32)
        for value, name in values.items():
            lookup[value] = names.index(name)
        labels = lookup[mask.astype(np.int64, copy=False)]
        if not (labels != IGNORE_LABEL).any():
            raise InputError(
                f"{path}: the mask labels no pixel (values present: {_listed(present)}); "
                "check that it is the right mask and how its values are mapped"
            )
        return labels

    def _binary_values(self, present: np.ndarray, path: str | os.PathLike) -> dict[int, str]:
        (name,) = self.class_names
        others = [int(v) for v in present if int(v) not in (0, 1, IGNORE_VALUE)]
        if others:
            raise InputError(
                f"{path}: --class needs a binary mask (0/1 or 0/255) but it has values {_listed(present)}; "
                "for an index mask use --labels \"0=...,1=...\" or --classes-file"
            )
        if 1 in present:  # 0/1 mask, where 255 (if any) is the usual ignore value
            return {1: name}
        return {IGNORE_VALUE: name}


def mask_content_key(labels: np.ndarray, class_names: list[str]) -> str:
    """Hash of what a mask says (which pixels are which class), independent of how it was encoded.

    Two masks that label the same pixels with the same names, through whatever values and mapping,
    get the same key; so re-adding an image is "unchanged" exactly when its supervision is.
    """
    present = [int(p) for p in np.unique(labels) if p != IGNORE_LABEL]
    canonical_names = sorted(class_names[p] for p in present)
    lookup = np.full(len(class_names) + 1, IGNORE_LABEL, dtype=np.int32)  # last slot: IGNORE_LABEL (-1)
    for position in present:
        lookup[position] = canonical_names.index(class_names[position])
    canonical = lookup[labels]
    digest = hashlib.sha256()
    digest.update(repr((tuple(labels.shape), tuple(canonical_names))).encode())
    digest.update(np.ascontiguousarray(canonical, dtype=np.int32).tobytes())
    return "sha256:" + digest.hexdigest()


def class_content_key(mask_key: str, name: str) -> str:
    """The identity of one (image, class) support entry: the whole mask's key plus the class name.

    The whole mask, not only the class's own pixels, so that a pooling rule that ever looked at the other
    classes' pixels could not leave a stale prototype; names compare case-insensitively, as everywhere.
    """
    digest = hashlib.sha256(f"{mask_key}\n{' '.join(name.split()).casefold()}".encode())
    return "sha256:" + digest.hexdigest()
