"""Small file-system helpers that make a commit survive a crash or a power cut.

A rename is atomic but not durable until the directory is synced, and data written through zarr sits in the
page cache until synced; so before the manifest (the one commit point) is replaced, every file it will refer
to is fsynced, and after the replace the directory is fsynced too.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any


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


def fsync_files(paths: Iterable[Path]) -> None:
    """fsync each file, then each distinct parent directory once."""
    parents: set[Path] = set()
    for path in paths:
        fsync_file(path)
        parents.add(path.parent)
    for parent in parents:
        if parent.is_dir():
            fsync_dir(parent)


def fsync_tree(root: Path) -> None:
    """fsync every file and directory under root (used for freshly written arrays)."""
    if not root.exists():
        return
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            fsync_file(Path(dirpath) / name)
        fsync_dir(Path(dirpath))


def atomic_write_json(path: Path, payload: Any) -> None:
    """Replace `path` with `payload` as JSON so that readers see the old or the new file, never a mix."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    data = json.dumps(payload, indent=1, sort_keys=True).encode("utf-8")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:  # a full disk or a kill: no half-written file is left behind
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
