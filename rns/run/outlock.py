"""One run at a time per output folder: an exclusive lock on `<out>/.rns.lock` for the whole run.

Two runs writing into one folder with different classes would leave labels of one class list next to a
`classes.json` of the other. `flock` belongs to the open file, so the kernel releases it when the process
ends however it ends (a killed run never leaves the folder locked). The run removes the file when it ends,
so no hidden file naming a dead pid stays in the outputs; one left by a killed run is taken over (its
lock went with its process) and removed by the next run. Since a file can be removed while another
process has it open, a lock counts only if the path still names the locked file; else it is taken anew.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from rns.errors import InputError

LOCK_NAME = ".rns.lock"


class OutputFolderBusyError(InputError):
    """Another rns run is writing into the same output folder."""


@contextlib.contextmanager
def output_folder_lock(out_dir: Path) -> Iterator[None]:
    """Hold the output folder's lock while the block runs; refuse at once if another run holds it."""
    path = out_dir / LOCK_NAME
    while True:
        fd = _open_lock_file(path, out_dir)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise OutputFolderBusyError(
                f"output folder {out_dir} is in use by another rns run (pid {holder}); wait for it to "
                "finish or choose another --out"
            ) from None
        if _names_open_file(path, fd):
            break
        os.close(fd)  # the run that held it removed it meanwhile: lock the file now at the path
    try:
        with contextlib.suppress(OSError):  # only informative: which process holds it
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode("ascii"), 0)
        yield
    finally:
        with contextlib.suppress(OSError):  # removed while still locked, so no other run holds it
            os.unlink(path)
        os.close(fd)


def _open_lock_file(path: Path, out_dir: Path) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        raise InputError(
            f"cannot write in output folder {out_dir} ({error.strerror}); choose another --out"
        ) from None


def _names_open_file(path: Path, fd: int) -> bool:
    """Whether `path` still is the file open as `fd` (not removed or replaced since it was opened)."""
    try:
        on_disk = os.stat(path)
    except OSError:
        return False
    held = os.fstat(fd)
    return (on_disk.st_dev, on_disk.st_ino) == (held.st_dev, held.st_ino)
