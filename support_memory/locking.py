"""The inter-process lock that serialises writers of one memory.

Writers take an exclusive `fcntl.flock` on `<memory>/.lock` for the whole read-modify-commit cycle, so two
processes adding at once queue instead of losing each other's rows. Readers never lock: they read the
manifest, which is replaced atomically, and so always see a committed state. `flock` locks belong to the
open file description, so two threads of one process (each opening the file) also exclude each other, and the
kernel drops the lock when a holder dies, so a killed writer never leaves the memory locked.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from support_memory.errors import MemoryLockedError

LOCK_FILE_NAME = ".lock"


class WriterLock:
    """Exclusive writer lock on a memory directory; use as a context manager."""

    def __init__(self, directory: Path, timeout_s: float = 300.0, poll_s: float = 0.02) -> None:
        self.path = Path(directory) / LOCK_FILE_NAME
        self.timeout_s = timeout_s
        self.poll_s = poll_s
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise MemoryLockedError(
                        f"memory {self.path.parent} is being written by another process (lock held for more "
                        f"than {self.timeout_s:.0f} s); wait for it to finish and retry"
                    ) from None
                time.sleep(self.poll_s)
        self._fd = fd

    def try_acquire(self) -> bool:
        """Take the lock only if it is free right now (for optional work such as saving an index)."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> WriterLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


class ReaderPin:
    """A shared lock that keeps one generation of row arrays from being deleted while a reader uses it.

    A `SupportMemory` pins the generation of the snapshot it reads; a writer deletes a superseded generation
    only if it can take the exclusive lock on the pin file, so an open reader never finds its rows gone.
    Because the writer unlinks the pin file after deleting, a reader that locked a file that has since been
    unlinked (compare inode numbers) must re-read the manifest and pin the new generation.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> bool:
        """Pin; False if the file was removed under us (the caller re-reads the manifest and retries).

        On a memory the reader may not write (a read-only mount, a shared folder of another user) the pin
        file is opened read-only if it exists (a shared flock needs no write access) and otherwise the
        reader goes unpinned: no process can delete generations there through this path anyway.
        """
        fd = self._open()
        if fd is None:
            return True
        fcntl.flock(fd, fcntl.LOCK_SH)
        try:
            same_file = os.stat(self.path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same_file = False
        if not same_file:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def _open(self) -> int | None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            if error.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
                raise
        try:
            return os.open(self.path, os.O_RDONLY)
        except OSError:
            return None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def try_remove_unpinned(pin_path: Path, remove: Callable[[], None]) -> bool:
    """Run `remove` (delete a generation) only if no reader pins it, then drop the pin file (writers only)."""
    fd = os.open(pin_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        remove()
        pin_path.unlink(missing_ok=True)
        return True
    finally:
        os.close(fd)
