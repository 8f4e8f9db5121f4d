"""Retrieval weights stored with memory entries: what `rns memory audit --apply` leaves for segmentation.

The audit measures, per entry (an image's example of one class), whether it helps or hurts the photos that
retrieve it, and `--apply` records a weight in the entry's meta (`retrieval_weight`, "0" = excluded, a value
in (0, 1) = demoted). Segmenting then ranks the memory's rows by a weighted similarity

    s' = w * s   where s > 0,      s' = s   where s <= 0,      rows with w = 0 never retrieved,

so a weight only ever demotes a row, and a down-weighted example also counts for w in its class's prototype
(the class-level mean that anchors the head). Entries without a stored weight have w = 1. A memory with no
weight below 1 is not wrapped at all (`weighted_source` returns the memory itself), so its segmentation is
exactly today's, bit for bit.

The weighted search is exact: it asks the memory for k + D candidates per query, D being the number of
weighted rows; since only those D rows can move down, the true top k after weighting is among them.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

WEIGHT_KEY = "retrieval_weight"
"""Meta key of an entry's retrieval weight in [0, 1] ("0": excluded from retrieval); absent = 1."""
SCORE_KEY = "audit_score"
"""Meta key of an entry's helpfulness (mean IoU change in points on the photos that retrieve it)."""
EVIDENCE_KEY = "audit_retrieved_by"
"""Meta key of how many other support photos retrieved the entry in the audit (the score's evidence)."""
AUDITED_KEY = "audit_commit"
"""Meta key of the memory commit the audit that scored the entry ran on."""
AUDIT_KEYS = (SCORE_KEY, EVIDENCE_KEY, WEIGHT_KEY, AUDITED_KEY)


def entry_weight(meta: Any) -> float:
    """An entry's retrieval weight from its meta (1.0 when none is stored or it is not a number in [0, 1])."""
    text = meta.get(WEIGHT_KEY) if meta else None
    if text is None:
        return 1.0
    try:
        weight = float(text)
    except ValueError:
        return 1.0
    return weight if 0.0 <= weight <= 1.0 else 1.0


def stored_weights(memory: Any) -> dict[str, float]:
    """{source id: weight} of the memory's entries whose weight is below 1 (empty: nothing is weighted)."""
    return {info.source_id: w for info in memory.sources() if (w := entry_weight(info.meta)) < 1.0}


class WeightedSource:
    """A support memory seen through per-row retrieval weights (the `RowSource` protocol of rns.adapt)."""

    def __init__(self, memory: Any, weights: dict[str, float]) -> None:
        self.memory = memory
        self.source_weights = dict(weights)
        parts = [memory.source_rows(source_id) for source_id in sorted(weights)]
        rows = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        values = np.concatenate([np.full(len(part), weights[source_id], dtype=np.float32)
                                 for source_id, part in zip(sorted(weights), parts, strict=True)]
                                ) if parts else np.zeros(0, dtype=np.float32)  # fmt: skip
        order = np.argsort(rows, kind="stable")
        self.weighted_rows = rows[order].astype(np.int64)
        self.row_weights = values[order]
        self._prototypes: tuple[np.ndarray, np.ndarray] | None = None

    def identity(self) -> str:
        """A digest of the weights, part of a segmentation's settings (they change its pixels)."""
        blob = json.dumps(sorted(self.source_weights.items())).encode()
        return "weights:" + hashlib.sha256(blob).hexdigest()[:32]

    def _weights_of(self, rows: np.ndarray) -> np.ndarray:
        """The weight of each row in `rows` (1 where none is stored; rows may hold -1 padding)."""
        weights = np.ones(rows.shape, dtype=np.float32)
        if len(self.weighted_rows) == 0:
            return weights
        at = np.clip(np.searchsorted(self.weighted_rows, rows), 0, len(self.weighted_rows) - 1)
        hit = self.weighted_rows[at] == rows
        weights[hit] = self.row_weights[at[hit]]
        return weights

    def search(self, queries: np.ndarray, k: int) -> np.ndarray:
        """`[q, k]` rows, best weighted similarity first, -1 where fewer than k rows can be retrieved."""
        found = self.memory.search(queries, k + len(self.weighted_rows))
        rows = np.asarray(found.rows, dtype=np.int64)
        scores = np.asarray(found.scores, dtype=np.float32)
        weights = self._weights_of(rows)
        weighted = np.where(scores > 0, scores * weights, scores)
        weighted[(rows < 0) | (weights == 0)] = -np.inf
        order = np.argsort(-weighted, axis=1, kind="stable")[:, :k]
        best = np.take_along_axis(rows, order, axis=1)
        best[np.take_along_axis(weighted, order, axis=1) == -np.inf] = -1
        return best

    def rows(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.memory.rows(rows)

    def live_rows(self) -> np.ndarray:
        """Every row that can be retrieved (excluded rows left out)."""
        rows = np.asarray(self.memory.live_rows(), dtype=np.int64)
        return rows[self._weights_of(rows) > 0]

    def class_prototypes(self, class_ids: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """Per class, the normalised weighted mean of its rows; classes whose rows are all excluded are
        left out (they then have no examples in a segmentation, as if removed). Read once, then kept."""
        if self._prototypes is None:
            rows = np.asarray(self.memory.live_rows(), dtype=np.int64)
            vectors, class_of_row = self.memory.rows(rows)
            weights = self._weights_of(rows).astype(np.float64)
            ids = np.unique(class_of_row)
            dim = vectors.shape[1] if vectors.ndim == 2 else 0
            sums = np.zeros((len(ids), dim), dtype=np.float64)
            np.add.at(sums, np.searchsorted(ids, class_of_row), vectors.astype(np.float64) * weights[:, None])
            totals = np.zeros(len(ids), dtype=np.float64)
            np.add.at(totals, np.searchsorted(ids, class_of_row), weights)
            keep = totals > 0
            norms = np.linalg.norm(sums[keep], axis=1, keepdims=True)
            self._prototypes = ids[keep].astype(np.int64), (sums[keep] / np.maximum(norms, 1e-12)).astype(
                np.float32)
        ids, vectors = self._prototypes
        if class_ids is None:
            return ids, vectors
        wanted = np.asarray(class_ids, dtype=np.int64)
        return wanted[np.isin(wanted, ids)], vectors[np.searchsorted(ids, wanted[np.isin(wanted, ids)])]


def weighted_source(memory: Any) -> Any:
    """What retrieval should read: the memory itself when no entry is weighted below 1, else a
    `WeightedSource` over it."""
    weights = stored_weights(memory)
    return WeightedSource(memory, weights) if weights else memory
