"""The content identity of a memory: one hash that changes whenever what a reader would get changes.

Callers that cache results computed from a memory (a folder run deciding which outputs are still up to
date) need more than the commit number: two different memories can be at the same commit number, and a
memory can be rebuilt. So each source records a digest of its rows (vectors and class names, in order)
when they are written, and the identity hashes the fingerprint, the dimension, the class table (names
and text prompts) and every source's rows digest. Identical content gives the same identity whatever the
path or history; any change of a prototype, class or prompt gives another. Row positions are left out, so a
compaction (which only moves rows) keeps the identity.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

import numpy as np

from support_memory.manifest import Manifest, name_key


def rows_digest(vectors16: np.ndarray, class_names: Sequence[str]) -> str:
    """Digest of a source's rows as stored: float16 vectors and, per row, its class name."""
    digest = hashlib.sha256()
    digest.update(repr((tuple(vectors16.shape), str(vectors16.dtype))).encode())
    digest.update(np.ascontiguousarray(vectors16, dtype=np.float16).tobytes())
    digest.update(json.dumps([name_key(n) for n in class_names]).encode("utf-8"))
    return digest.hexdigest()


def content_id(manifest: Manifest) -> str:
    """The memory's content identity (see the module docstring).

    A source written before rows digests existed has none; the memory's store id and commit number stand
    in for it then, which is unique to this memory and commit (never equal across memories) at the cost
    of treating an unchanged old memory as changed once it is copied.
    """
    sources = []
    for source in sorted(manifest.sources.values(), key=lambda s: s.num):
        rows = source.rows_digest
        if rows is None:
            rows = f"legacy:{manifest.store_id}:{manifest.seq}:{source.source_id}"
        sources.append([source.source_id, rows])
    classes = sorted([name_key(c.name), c.text] for c in manifest.classes.values() if c.count > 0)
    payload = {
        "fingerprint": manifest.fingerprint,
        "dim": manifest.dim,
        "classes": classes,
        "sources": sources,
    }
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode("utf-8")
    return "sha256:" + hashlib.sha256(blob).hexdigest()
