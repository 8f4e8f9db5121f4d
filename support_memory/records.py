"""The public records of a memory: what a caller puts (`SourceEntry`) and what it reads back.

Kept apart from the store so that the draft logic and the store can both use them without a cycle.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class ClassInfo:
    """A class in the memory. `text` is the prompt to encode (None: no usable name, visual support only)."""

    id: int
    name: str
    text: str | None
    has_text: bool
    n_prototypes: int
    n_sources: int


@dataclass(frozen=True)
class SourceInfo:
    """A source (e.g. one support image) and what it contributed; `meta` is what its writer attached."""

    source_id: str
    content_key: str
    class_names: tuple[str, ...]
    n_prototypes: int
    meta: Mapping[str, str] = field(default_factory=dict)
    pruned: bool = False


@dataclass
class SourceEntry:
    """One source for `put_sources`; the fields mean what `SupportMemory.put_source`'s arguments mean."""

    source_id: str
    vectors: np.ndarray
    class_names: Sequence[str]
    content_key: str = ""
    class_texts: Mapping[str, str | None] | None = None
    meta: Mapping[str, str] | None = None
