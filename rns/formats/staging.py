"""Writing an import's items to a scratch folder as the plain (image, index mask) pairs rns already reads.

Teaching (`rns.teach.support`) and evaluating (`rns.evaluate.folder_eval`) take image and mask *files*,
validated and hashed by the code every other input goes through. Rather than a second path for in-memory
masks, each imported item's mask is written as an 8-bit PNG (value i = class i, 255 unlabelled) into a
temporary folder, and an image embedded in the export (LabelMe's base64) as a file beside it. The folder lives
as long as the `with` block; nothing is written anywhere else.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from rns.formats.items import UNLABELLED, ImportedSet, ItemProblem


@dataclass
class StagedItems:
    """An import's usable items as (image, mask) file pairs, with what could not be used."""

    class_names: list[str]
    pairs: list[tuple[Path, Path]] = field(default_factory=list)
    names: list[str] = field(default_factory=list)  # where each pair came from, for messages
    problems: list[ItemProblem] = field(default_factory=list)
    empty: list[str] = field(default_factory=list)  # items that label no pixel of the kept classes
    notes: list[str] = field(default_factory=list)

    def display_name(self, mask_or_image: Path) -> str:
        """The item name of a staged file (the scratch paths mean nothing to a user)."""
        for (image, mask), name in zip(self.pairs, self.names, strict=True):
            if mask_or_image in (image, mask):
                return name
        return str(mask_or_image)


@contextmanager
def staged_items(imported: ImportedSet) -> Iterator[StagedItems]:
    """Stage every item of `imported` into a temporary folder, removed when the block ends."""
    with tempfile.TemporaryDirectory(prefix="rns-import-") as scratch:
        folder = Path(scratch)
        staged = StagedItems(class_names=list(imported.class_names))
        for number, entry in enumerate(imported.entries(), start=1):
            if isinstance(entry, ItemProblem):
                staged.problems.append(entry)
            elif not (entry.mask != UNLABELLED).any():
                staged.empty.append(entry.name)
            else:
                mask_path = folder / f"{number:06d}.mask.png"
                Image.fromarray(np.ascontiguousarray(entry.mask, dtype=np.uint8)).save(mask_path)
                image = entry.image
                if isinstance(image, bytes):
                    embedded = folder / f"{number:06d}.image{entry.suffix or '.png'}"
                    embedded.write_bytes(image)
                    image = embedded
                staged.pairs.append((image, mask_path))
                staged.names.append(entry.name)
        staged.notes.extend(imported.notes)
        yield staged
