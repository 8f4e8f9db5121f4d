"""Exporting the support memory to one portable `.npz` file, for users who take their examples elsewhere.

The file needs nothing but numpy to read (`numpy.load(path)`, no pickle): the per-image prototypes with
their class and source, the class table, and the backbone fingerprint (as JSON, since a prototype is
only meaningful next to the features of the same model). It is written atomically.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rns.io.atomic import atomic_open
from support_memory import SupportMemory

EXPORT_FORMAT = "rns-support-export/1"


@dataclass(frozen=True)
class ExportSummary:
    """What an export wrote."""

    path: Path
    n_rows: int
    n_classes: int
    n_sources: int


def export_npz(memory: SupportMemory, path: str | os.PathLike) -> ExportSummary:
    """Write every live prototype of `memory` to `path` (.npz); see the module docstring for the layout.

    Arrays: `vectors` [n, d] float32, `labels` [n] int64 (index into `class_names`), `sources` [n] str,
    `class_names` [c] str, `class_texts` [c] str ("" where `class_has_text` is False), `class_has_text`
    [c] bool, `meta_json` (0-d str: format, fingerprint, dim, class and source tables).
    """
    path = Path(path)
    memory.refresh()
    classes = memory.classes()
    position_of = {info.id: position for position, info in enumerate(classes)}
    dim = memory.dim or 0
    vectors_parts: list[np.ndarray] = []
    label_parts: list[np.ndarray] = []
    source_parts: list[np.ndarray] = []
    for source_id, rows in _rows_by_source(memory):
        vectors, class_ids = memory.rows(rows)
        vectors_parts.append(vectors)
        label_parts.append(np.array([position_of[int(c)] for c in class_ids], dtype=np.int64))
        source_parts.append(np.full(len(rows), source_id))
    vectors = np.concatenate(vectors_parts) if vectors_parts else np.zeros((0, dim), dtype=np.float32)
    labels = np.concatenate(label_parts) if label_parts else np.zeros(0, dtype=np.int64)
    sources = np.concatenate(source_parts) if source_parts else np.zeros(0, dtype="<U1")
    meta = {
        "format": EXPORT_FORMAT,
        "fingerprint": memory.fingerprint,
        "dim": dim,
        "classes": [
            {"name": c.name, "text": c.text, "has_text": c.has_text, "prototypes": c.n_prototypes,
             "sources": c.n_sources}
            for c in classes
        ],
        "sources": [
            {"source_id": s.source_id, "content_key": s.content_key, "classes": list(s.class_names),
             "prototypes": s.n_prototypes}
            for s in memory.sources()
        ],
    }
    arrays = {
        "vectors": vectors.astype(np.float32, copy=False),
        "labels": labels,
        "sources": sources.astype(str),
        "class_names": np.array([c.name for c in classes], dtype=str),
        "class_texts": np.array([c.text or "" for c in classes], dtype=str),
        "class_has_text": np.array([c.has_text for c in classes], dtype=bool),
        "meta_json": np.array(json.dumps(meta)),
    }
    with atomic_open(path, "wb") as handle:
        np.savez(handle, **arrays)
    n_sources = len(meta["sources"])
    return ExportSummary(path=path, n_rows=len(vectors), n_classes=len(classes), n_sources=n_sources)


def _rows_by_source(memory: SupportMemory) -> list[tuple[str, np.ndarray]]:
    """The stored row numbers of each source, in source order."""
    return [(info.source_id, memory.source_rows(info.source_id)) for info in memory.sources()]
