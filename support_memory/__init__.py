"""support_memory: a crash-safe, zarr-backed store of labelled feature prototypes with kNN search.

It knows nothing of images or models: rows are vectors with a class and a source.
"""

from support_memory.errors import (
    CorruptMemoryError,
    FingerprintMismatchError,
    InvalidInputError,
    MemoryLockedError,
    MemoryStoreError,
    NotAMemoryError,
    UnknownEntryError,
)
from support_memory.index import IndexConfig
from support_memory.search import SearchResult
from support_memory.store import ClassInfo, SourceEntry, SourceInfo, SupportMemory

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
]
