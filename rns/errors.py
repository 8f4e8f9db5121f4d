"""User-facing errors.

Every failure a user can fix (a missing file, a bad mask, weights that are not there) is raised as an
`RnsError` whose message is one line naming the file and the fix. The CLI prints that line and exits with
code 2, so no user ever sees a traceback for a mistake of theirs; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations


class RnsError(Exception):
    """A problem the user can fix; `str(error)` is a complete one-line explanation."""

    exit_code = 2


class InputError(RnsError):
    """A file or argument given by the user is unusable (missing, not an image, wrong size, ...)."""


class WeightsUnavailableError(RnsError):
    """Pretrained weights were asked for but cannot be found locally nor downloaded."""


class DeviceError(RnsError):
    """The requested compute device does not exist or is not available."""
