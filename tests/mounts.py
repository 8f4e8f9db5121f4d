"""Real file systems for tests of a full disk and a read-only memory: a small tmpfs and a read-only bind.

Mounting needs root (CI runs as root). Where mounting is not permitted the fixtures skip with the reason,
printed by `pytest -rs`; nothing is faked.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def _mount(args: list[str]) -> None:
    if shutil.which("mount") is None:
        pytest.skip("no `mount` command on this machine: cannot make a real small or read-only file system")
    done = subprocess.run(["mount", *args], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"mounting is not permitted here ({done.stderr.strip() or done.returncode}); this test "
                    "needs root to make a real small or read-only file system")  # fmt: skip


def _unmount(target: Path) -> None:
    subprocess.run(["umount", "-l", str(target)], capture_output=True)


@contextlib.contextmanager
def small_tmpfs(target: Path, size_kib: int) -> Iterator[Path]:
    """A tmpfs of `size_kib` KiB mounted at `target` for the block."""
    target.mkdir(parents=True, exist_ok=True)
    _mount(["-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(target)])
    try:
        yield target
    finally:
        _unmount(target)


@contextlib.contextmanager
def read_only_view(source: Path, target: Path) -> Iterator[Path]:
    """`source` seen read-only at `target` (a read-only bind mount): writes there fail with EROFS."""
    target.mkdir(parents=True, exist_ok=True)
    _mount(["--bind", str(source), str(target)])
    try:
        done = subprocess.run(["mount", "-o", "remount,bind,ro", str(target)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"a read-only remount is not permitted here ({done.stderr.strip()})")
        yield target
    finally:
        _unmount(target)


def fill(folder: Path, leave_bytes: int) -> Path:
    """Fill the file system holding `folder` until about `leave_bytes` are free; returns the filler file."""
    filler = folder / "filler.bin"
    stats = os.statvfs(folder)
    free = stats.f_bavail * stats.f_frsize
    with open(filler, "wb") as handle:
        handle.write(b"\0" * max(0, free - leave_bytes))
    return filler


def leftovers(folder: Path) -> list[str]:
    """Temporary or partial files a writer would leave if it did not clean up after a failure."""
    names = [".tmp", ".partial", ".rns-tmp"]
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*")
                  if path.is_file() and any(path.name.endswith(n) for n in names))  # fmt: skip
