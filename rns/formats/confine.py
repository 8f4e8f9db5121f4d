"""Keeping an import inside the folders the user named.

An export names its files itself (COCO's `file_name`, LabelMe's `imagePath`, a Label Studio URL) and a
folder may hold symbolic links, so without a check a label file could make rns read any file the user can
read (`../../home/me/private.jpg`, `/etc/passwd`, a link to either) and add it to the memory. Every file
an import reads is therefore resolved (links followed, `..` collapsed) and used only when the result lies
inside one of the folders the user gave on the command line.

What a refusal says depends only on the name as written and on the folders' own entries (where a link
inside them points), never on whether something outside exists: a message must not let a label file
probe the disk.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rns.formats.items import ItemError

OUTSIDE_LINK = ("is a link to a file outside its folder (only files inside the folders you name are read): "
                "copy the file in instead of linking it")
"""Why a file met while listing a folder is not read (the same whether or not its target exists)."""


def resolved(path: Path) -> Path | None:
    """`path` with every link followed and `..` collapsed; None when that cannot be done (a link loop,
    a name the operating system refuses)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError, ValueError):
        return None


def lies_within(path: Path, folder_real: Path) -> bool:
    """Whether `path`, once resolved, is `folder_real` (already resolved) or lies under it."""
    real = resolved(path)
    return real is not None and (real == folder_real or folder_real in real.parents)


def is_regular_file(path: Path) -> bool:
    """A plain file (links followed): never a folder, a FIFO that would block a read, or a device."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


@dataclass
class Confinement:
    """The folders one import may read from (the `--images`, `--labelme`, `--yolo` ... folders)."""

    folders: Sequence[Path]
    _real: list[Path] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.folders = [Path(folder) for folder in self.folders]
        self._real = [real for real in (resolved(folder) for folder in self.folders) if real is not None]

    def contains(self, path: Path) -> bool:
        """Whether `path` (links followed) lies inside one of the folders."""
        return any(lies_within(path, real) for real in self._real)

    def named(self) -> str:
        """The folders, for messages."""
        return " or ".join(str(folder) for folder in self.folders)

    def find(self, candidates: Iterable[Path]) -> tuple[Path | None, bool]:
        """The first candidate that is a plain file inside the folders, and whether any was refused for
        lying outside them (decided from the names and the folders' links alone, so the same whether or
        not the outside file exists)."""
        refused = False
        for candidate in candidates:
            if not self.contains(candidate):
                refused = True
            elif is_regular_file(candidate):
                return candidate, refused
        return None, refused

    def outside_reason(self, shown: str, what: str = "file",
                       fix: str = "copy it into the folder (a link to elsewhere is refused too)") -> str:
        """The one line for a file that lies outside the folders (whether or not it exists)."""
        return (f"{what} {shown} leads outside {self.named()} (only files inside the folders you name are "
                f"read, links followed): {fix}")

    def locate(self, candidates: Iterable[Path], shown: str, what: str, missing: str,
               fix: str | None = None) -> Path:
        """The first candidate `find` accepts, else an `ItemError`: the outside line (`outside_reason`)
        when a candidate was refused for lying outside the folders, else `missing`."""
        found, refused = self.find(candidates)
        if found is not None:
            return found
        if refused:
            raise ItemError(self.outside_reason(shown, what) if fix is None
                            else self.outside_reason(shown, what, fix))
        raise ItemError(missing)
