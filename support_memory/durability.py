"""Small file-system helpers that make a commit survive a crash or a power cut.

A new file is not durable until it and its directory are synced, and data written through zarr sits in the
page cache until synced; so a folder memory fsyncs a segment before a commit record names it, and the
folder after the record is created (see storage.LocalStorage).
"""

from __future__ import annotations

import os
from pathlib import Path


def fsync_file(path: Path) -> None:
    """Flush one file's data to disk; a missing file is skipped (nothing to make durable)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Make renames and creations inside a directory durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)




def fsync_tree(root: Path) -> None:
    """fsync every file and directory under root (used for freshly written arrays)."""
    if not root.exists():
        return
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            fsync_file(Path(dirpath) / name)
        fsync_dir(Path(dirpath))
