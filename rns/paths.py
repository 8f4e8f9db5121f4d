"""Where rns keeps things on disk (the support memory and caches), and how a path is shown in a message.

Precedence for the memory: an explicit location (`--memory`), then `RNS_MEMORY`, then a per-user data
directory (XDG_DATA_HOME on Linux, ~/Library/Application Support on macOS, %LOCALAPPDATA% on Windows).
A memory location is a folder or an object-store URL (`s3://bucket/prefix`); URLs stay strings, since a
`Path` would fold their `//`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

MEMORY_ENV = "RNS_MEMORY"
CACHE_ENV = "RNS_CACHE"


def _user_dir(kind: str) -> Path:
    home = Path.home()
    if sys.platform == "darwin":
        base = home / "Library" / ("Caches" if kind == "cache" else "Application Support")
    elif os.name == "nt":
        base = Path(os.environ.get("LOCALAPPDATA", home / "AppData" / "Local"))
    else:
        var = "XDG_CACHE_HOME" if kind == "cache" else "XDG_DATA_HOME"
        default = home / (".cache" if kind == "cache" else ".local/share")
        base = Path(os.environ.get(var) or default)
    return base / "rns"


def default_memory_path(explicit: str | os.PathLike | None = None) -> Path | str:
    """The support memory to use: the folder as a Path, or the URL (`scheme://...`) as a string."""
    chosen = explicit or os.environ.get(MEMORY_ENV)
    if not chosen:
        return _user_dir("data") / "memory.zarr"
    text = os.fspath(chosen)
    if "://" in text and not text.startswith("file://"):
        return text
    return Path(text.removeprefix("file://")).expanduser()


def cache_dir() -> Path:
    """Per-user cache (text features, region proposals); `RNS_CACHE` overrides it."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else _user_dir("cache")


def printable(path: str | os.PathLike) -> str:
    """A path as text that can always be printed and written to JSON (non-UTF-8 bytes as \\xNN)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")
