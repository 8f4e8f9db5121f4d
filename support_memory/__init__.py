"""support_memory: a crash-safe, zarr-backed store of labelled feature prototypes with kNN search.

It knows nothing of images or models: rows are vectors with a class and a source.

The errors are imported at once (they are tiny and a command line catches them on every run); the store,
search and index, which pull in zarr and numpy, load on first use, so catching a `MemoryStoreError` does
not cost a program that never opens a memory the zarr import.
"""

from __future__ import annotations

from importlib import import_module

from support_memory.errors import (
    CorruptMemoryError,
    FingerprintMismatchError,
    InvalidInputError,
    MemoryLockedError,
    MemoryStoreError,
    NoSpaceError,
    NotAMemoryError,
    ReadOnlyMemoryError,
    UnknownEntryError,
)

_LAZY = {
    "SupportMemory": "support_memory.store",
    "SourceEntry": "support_memory.records",
    "ClassInfo": "support_memory.records",
    "SourceInfo": "support_memory.records",
    "SearchResult": "support_memory.search",
    "IndexConfig": "support_memory.index",
}

__all__ = [
    "SupportMemory",
    "SourceEntry",
    "ClassInfo",
    "SourceInfo",
    "SearchResult",
    "IndexConfig",
    "MemoryStoreError",
    "FingerprintMismatchError",
    "CorruptMemoryError",
    "UnknownEntryError",
    "NotAMemoryError",
    "InvalidInputError",
    "MemoryLockedError",
    "ReadOnlyMemoryError",
    "NoSpaceError",
]


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'support_memory' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
