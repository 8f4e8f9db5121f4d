"""Crash-safe file writes: a final file is either absent, the old version, or the complete new one.

Every writer goes through `atomic_write`: the bytes go to a temporary file in the *same* directory (so the
final `os.replace` is a rename within one filesystem, which POSIX and Windows make atomic), the temporary
file is fsynced before the rename, and the directory is fsynced after it so the rename itself survives a
power cut. A process killed mid-write leaves at most a temporary file whose name carries the writer's pid;
`remove_stale_temp_files` deletes those once that pid is gone, so a rerun cleans up after a crash.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

TEMP_SUFFIX = ".rns-tmp"
# ".<final name>.<pid>.<random>.rns-tmp": the pid tells a later run whether the writer is still alive.
_TEMP_NAME = re.compile(r"^\..+\.(?P<pid>\d+)\.[0-9a-f]{8}" + re.escape(TEMP_SUFFIX) + "$")


def _temp_path(final: Path) -> Path:
    token = os.urandom(4).hex()
    return final.with_name(f".{final.name}.{os.getpid()}.{token}{TEMP_SUFFIX}")


def fsync_directory(directory: str | os.PathLike) -> None:
    """Make renames in `directory` durable; a no-op where directories cannot be opened (Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(
    path: str | os.PathLike, mode: str = "wb", *, sync_directory: bool = True
) -> Iterator[IO[Any]]:
    """Open a temporary file that replaces `path` only when the `with` block ends without an error.

    On an exception the temporary file is removed and `path` is left untouched. `sync_directory=False`
    skips the directory fsync (a few ms each) for a caller that writes several files into one folder and
    calls `fsync_directory` once after the last.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes whole files; mode must be 'w' or 'wb', not {mode!r}")
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    temp = _temp_path(final)
    encoding = "utf-8" if mode == "w" else None
    try:
        with open(temp, mode, encoding=encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise
    if sync_directory:
        fsync_directory(final.parent)


def atomic_write(
    path: str | os.PathLike, write: Callable[[IO[bytes]], object], *, sync_directory: bool = True
) -> Path:
    """Call `write(binary_file)` and atomically install what it wrote at `path`."""
    with atomic_open(path, "wb", sync_directory=sync_directory) as handle:
        write(handle)
    return Path(path)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, sync_directory: bool = True) -> Path:
    """Atomically replace `path` with `data`."""
    return atomic_write(path, lambda handle: handle.write(data), sync_directory=sync_directory)


def atomic_write_json(path: str | os.PathLike, payload: object, *, sync_directory: bool = True) -> Path:
    """Atomically write `payload` as indented UTF-8 JSON with a trailing newline.

    A file name that is not valid UTF-8 reaches Python as lone surrogates; they are written as JSON
    `\\udcXX` escapes (valid JSON, read back as the same name) instead of failing the write.
    """
    text = json.dumps(payload, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    return atomic_write_bytes(path, text.encode("utf-8", "backslashreplace"), sync_directory=sync_directory)


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists but is not ours, or we cannot tell: leave its files alone
    return True


def remove_stale_temp_files(directory: str | os.PathLike) -> int:
    """Delete temporary files under `directory` left by writers that no longer run; returns how many.

    Files of a live writer (another run into the same folder) are kept.
    """
    root = Path(directory)
    if not root.is_dir():
        return 0
    removed = 0
    for candidate in root.rglob(f".*{TEMP_SUFFIX}"):
        match = _TEMP_NAME.match(candidate.name)
        if match is None or _pid_alive(int(match.group("pid"))):
            continue
        with contextlib.suppress(FileNotFoundError):
            candidate.unlink()
            removed += 1
    return removed
