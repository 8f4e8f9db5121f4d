"""support_memory: a crash-safe, zarr-backed store of labelled feature prototypes with kNN search.

It knows nothing of images or models: rows are vectors with a class and a source.
"""

from support_memory.errors import (
    CorruptMemoryError,
    FingerprintMismatchError,
    MemoryStoreError,
    UnknownEntryError,
)

__all__ = ["MemoryStoreError", "FingerprintMismatchError", "CorruptMemoryError", "UnknownEntryError"]
