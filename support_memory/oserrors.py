"""Turning the operating system's refusals to write into the memory's own one-line errors.

A full disk or a read-only folder is not a bug: the caller should get a `MemoryStoreError` that says which
path, what happened and what to do, never a traceback from deep inside zarr. Other OS errors are left alone.
"""

from __future__ import annotations

import errno
from pathlib import Path

from support_memory.errors import MemoryStoreError, NoSpaceError, ReadOnlyMemoryError

NO_SPACE = {errno.ENOSPC, errno.EDQUOT}
READ_ONLY = {errno.EROFS, errno.EACCES, errno.EPERM}


def translate_os_error(error: OSError, memory: Path | str, doing: str) -> MemoryStoreError | None:
    """The memory error for `error` raised while `doing` something to `memory`; None if it is no such case."""
    where = error.filename or memory
    if error.errno in NO_SPACE:
        return NoSpaceError(
            f"no space left on the device holding memory {memory} (while {doing}, at {where}); the memory "
            "is unchanged: free some space and run the same command again"
        )
    if error.errno in READ_ONLY or isinstance(error, PermissionError):  # S3 AccessDenied has no errno
        reason = "read-only file system" if error.errno == errno.EROFS else "permission denied"
        return ReadOnlyMemoryError(
            f"memory {memory} cannot be written ({reason} at {where}) while {doing}; reading it still works: "
            "to change it, copy it to a writable folder and use that copy"
        )
    return None
