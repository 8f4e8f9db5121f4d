"""Errors raised by the support memory.

`support_memory` knows nothing of images or models, so these carry only memory-level facts; `rns`
turns them into one-line messages for its users (they are written to be shown as they are).
"""

from __future__ import annotations


class MemoryStoreError(Exception):
    """Base class: the memory cannot do what was asked; the message says why and what to do."""


class FingerprintMismatchError(MemoryStoreError):
    """Rows made by another backbone or feature setting were offered to a memory built with another."""


class CorruptMemoryError(MemoryStoreError):
    """The store on disk fails its consistency check."""


class UnknownEntryError(MemoryStoreError):
    """A class or source that the memory does not hold was named."""


class NotAMemoryError(MemoryStoreError):
    """A path was given as a memory but holds something else (or nothing, where creating was not allowed)."""


class InvalidInputError(MemoryStoreError):
    """Vectors, names or queries offered to the memory are malformed; nothing was written."""


class MemoryLockedError(MemoryStoreError):
    """Another process kept the writer lock for longer than we were willing to wait."""


class ReadOnlyMemoryError(MemoryStoreError):
    """A write was asked of a memory whose directory or file system does not allow writing."""


class NoSpaceError(MemoryStoreError):
    """The file system holding the memory is full; the commit was abandoned and the memory is unchanged."""
