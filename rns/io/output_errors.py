"""What a failed write into the output folder tells the user: one line with the path and the fix.

A full disk is not one image's problem: every later image would fail the same way, so the run stops with
one line naming the file and "no space left on device" (images finished before it keep their outputs and
done records, so a rerun after freeing space resumes). Other write errors name the file and the reason.
"""

from __future__ import annotations

import errno
from pathlib import Path

from rns.errors import RnsError

NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})


class OutputWriteError(RnsError):
    """An output file could not be written (disk full, permissions); nothing half-written was left."""


def output_write_error(error: OSError, out_dir: Path) -> OutputWriteError:
    """The one-line error for `error`, raised while writing into `out_dir`."""
    where = error.filename or out_dir
    if error.errno in NO_SPACE:
        return OutputWriteError(
            f"no space left on device writing {where}: free some space and run again (images finished so "
            "far are kept, and the rerun resumes from them)"
        )
    return OutputWriteError(
        f"cannot write {where} ({error.strerror or error}): check the permissions of --out {out_dir}, or "
        "choose another --out"
    )
