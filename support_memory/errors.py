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


class DamagedMemoryError(CorruptMemoryError):
    """A part of the memory on disk (a segment file, a commit record) is unreadable or fails its checks.

    `part` names the object (a key under the memory's root), `problem` says what is wrong with it in one
    line. The message adds the way out in the library's own terms; a command line names its own commands
    instead (see `problem`), so support_memory never names an rns command.
    """

    FIX = ("SupportMemory.check() lists every damaged part and SupportMemory.repair() writes a commit "
           "keeping every intact source (it deletes nothing)")

    def __init__(self, location: str, part: str, problem: str) -> None:
        self.location, self.part, self.detail = location, part, problem
        self.problem = f"memory {location} is damaged: {part}: {problem}"
        super().__init__(f"{self.problem}; {self.FIX}")
