"""One run at a time per output folder: an exclusive lock on `<out>/.rns.lock` for the whole run.

Two runs writing into one folder with different classes would leave labels of one class list next to a
`classes.json` of the other. `flock` belongs to the open file, so the kernel releases it when the process
ends however it ends (a killed run never leaves the folder locked), and the lock file itself can stay.
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
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        raise InputError(
            f"cannot write in output folder {out_dir} ({error.strerror}); choose another --out"
        ) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
            raise OutputFolderBusyError(
                f"output folder {out_dir} is in use by another rns run (pid {holder}); wait for it to "
                "finish or choose another --out"
            ) from None
        with contextlib.suppress(OSError):  # only informative: which process holds it
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode("ascii"), 0)
        yield
    finally:
        os.close(fd)
