"""Opening the support memory for a command that will write it, refusing early when it cannot be written.

A read-only memory (a shared team memory on a read-only mount, a container layer) must fail before the
model is loaded and features are extracted, not after seconds of work.
"""

from __future__ import annotations

import os
from pathlib import Path

from rns.errors import InputError


def refuse_unwritable_memory(path: str | os.PathLike) -> None:
    """Raise `ReadOnlyMemoryError` (one line) now if the existing memory at `path` cannot be written.

    A memory that does not exist yet is checked when it is created.
    """
    from support_memory import SupportMemory

    if not SupportMemory.exists(path):
        return

    with SupportMemory.open(path, create=False) as memory:
        memory.check_writable()


def refuse_file_as_memory(path: str | os.PathLike | None) -> None:
    """Raise support_memory's one-line `NotAMemoryError` now if the memory path ($RNS_MEMORY, --memory)
    names a file, before a command spends seconds loading the model."""
    from rns.paths import default_memory_path
    from support_memory import SupportMemory

    location = default_memory_path(path)
    if isinstance(location, Path) and location.exists() and not location.is_dir():
        SupportMemory.open(location, create=False)  # refuses a file, in the words add-support uses


def open_existing_memory(path: str | os.PathLike, *, load: bool = True):
    """The memory at `path` for a command that reads or removes (it never creates one); `load=False`
    leaves its state unread until needed (`rns memory check/repair` on a memory whose state is damaged).

    A missing memory gets rns's own one-line advice (which command fills a memory, which option names
    one); `support_memory` itself names no rns command or option.
    """
    from support_memory import NotAMemoryError, SupportMemory

    try:
        return SupportMemory.open(path, create=False, load=load)
    except NotAMemoryError as error:
        if "://" in os.fspath(path) or Path(path).exists():
            raise
        raise InputError(
            f"no support memory at {path}; add examples first (rns add-support IMAGE MASK --class NAME) or "
            "check --memory"
        ) from error


def reindex(memory) -> dict:
    """Retrain and save the memory's approximate index; an InputError when faiss is not installed."""
    from support_memory.index import faiss_available

    if not faiss_available():
        raise InputError("the approximate index needs faiss: pip install 'rns[faiss]' (exact search needs "
                         "nothing)")
    memory.check_writable()
    described = memory.reindex()
    if described is None:
        raise InputError(f"memory {memory.path} holds no prototypes yet; add examples first "
                         "(rns add-support)")
    return described
