"""Step 3: the retrieved support set, the union of every query's k nearest stored prototypes.

Retrieval keeps the head's training set small and about this image: a street scene at night trains on
night-time street prototypes, not on every example ever stored.

The memory is reached through a small protocol (`RowSource`) so that this module needs neither zarr nor
the store: `support_memory.SupportMemory` satisfies it as it is, and `ArraySource` is an in-memory numpy
implementation for tests and small experiments.

    source.search(queries [q, d] float32, k) -> rows [q, k] int64 (-1 = no row), or an object with `.rows`
    source.rows(rows [m] int64) -> (vectors [m, d] float32, memory_class_ids [m] int64)
    source.class_prototypes(class_ids=None) -> (memory_class_ids [c], vectors [c, d])   # normalised means

`nearest_rows` accepts a bare search callable as well, for callers that have nothing else.
Memory class ids are mapped to class indices of this request by `class_index`: a memory class that is
not asked maps to background (0) by default, because its examples are evidence of "none of the asked
classes"; mapping a memory class to None drops its rows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from rns.adapt.types import AdaptConfig, SupportSet

SearchFn = Callable[[np.ndarray, int], Any]


class RowSource(Protocol):
    """What retrieval needs from a support memory (see the module docstring)."""

    def search(self, queries: np.ndarray, k: int) -> Any: ...

    def rows(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def class_prototypes(self, class_ids: Any = None) -> tuple[np.ndarray, np.ndarray]: ...

    def live_rows(self) -> np.ndarray: ...


def _as_rows(result: Any) -> np.ndarray:
    """Accept both a bare `[q, k]` array and a search result object carrying `.rows`."""
    rows = result.rows if hasattr(result, "rows") and not isinstance(result, np.ndarray) else result
    return np.asarray(rows, dtype=np.int64)


def nearest_rows(queries: torch.Tensor | np.ndarray, search: SearchFn | RowSource, k: int) -> np.ndarray:
    """Sorted unique memory rows among the k nearest neighbours of every query (-1 entries dropped)."""
    search_fn = search.search if hasattr(search, "search") else search
    array = queries.detach().float().cpu().numpy() if isinstance(queries, torch.Tensor) else queries
    rows = _as_rows(search_fn(np.ascontiguousarray(array, dtype=np.float32), k))
    return np.unique(rows[rows >= 0])


def _map_classes(memory_ids: np.ndarray, class_index: Mapping[int, int | None],
                 unmapped: int | None) -> np.ndarray:
    """Class index of each memory class id, -1 for dropped ones."""
    mapped = [class_index.get(int(i), unmapped) for i in memory_ids]
    return np.array([-1 if m is None else m for m in mapped], dtype=np.int64)


def merged_class_prototypes(source: RowSource, class_index: Mapping[int, int | None], num_classes: int,
                            unmapped: int | None = 0) -> tuple[np.ndarray, np.ndarray]:
    """`[C, d]` class-level prototypes and the `[C]` mask of classes that have one.

    Where several memory classes map to one class index (every unasked class becomes background), their
    prototypes are averaged with equal weight and renormalised: each memory class counts once, however
    many examples it has, so that one heavily labelled class does not stand for all of background.
    """
    ids, vectors = source.class_prototypes(None)
    ids = np.asarray(ids, dtype=np.int64)
    vectors = np.asarray(vectors, dtype=np.float32)
    dim = vectors.shape[1] if vectors.ndim == 2 else 0
    sums = np.zeros((num_classes, dim), dtype=np.float64)
    counts = np.zeros(num_classes, dtype=np.int64)
    for target, vector in zip(_map_classes(ids, class_index, unmapped), vectors, strict=True):
        if 0 <= target < num_classes:
            sums[target] += vector
            counts[target] += 1
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    protos = np.where(norms > 0, sums / np.maximum(norms, 1e-12), 0.0).astype(np.float32)
    return protos, counts > 0


def retrieve_support(queries: torch.Tensor, source: RowSource, class_index: Mapping[int, int | None],
                     num_classes: int, config: AdaptConfig | None = None, *,
                     unmapped: int | None = 0,
                     prototypes: tuple[np.ndarray, np.ndarray] | None = None) -> SupportSet:
    """The SupportSet for one image, on the queries' device.

    With `config.use_retrieval` the rows are the union of the `config.k` nearest neighbours of every
    query; without it (ablation) they are every stored row (`source.live_rows()`). `prototypes` is
    `merged_class_prototypes(...)` computed once by a caller that segments many images with one memory.
    """
    config = config or AdaptConfig()
    if config.use_retrieval:
        rows = nearest_rows(queries, source, config.k)
    else:
        rows = np.asarray(source.live_rows(), dtype=np.int64)
    dim = queries.shape[1]
    if len(rows):
        vectors, memory_ids = source.rows(rows)
        labels = _map_classes(np.asarray(memory_ids, dtype=np.int64), class_index, unmapped)
        keep = (labels >= 0) & (labels < num_classes)
        vectors, labels = np.asarray(vectors, dtype=np.float32)[keep], labels[keep]
    else:
        vectors, labels = np.zeros((0, dim), dtype=np.float32), np.zeros(0, dtype=np.int64)
    protos, has_visual = prototypes or merged_class_prototypes(source, class_index, num_classes, unmapped)
    if protos.shape[1] != dim:  # an empty memory reports no dimension
        protos = np.zeros((num_classes, dim), dtype=np.float32)
    device = queries.device
    return SupportSet(
        vectors=F.normalize(torch.from_numpy(vectors).to(device), dim=-1),
        labels=torch.from_numpy(labels).to(device),
        class_vectors=torch.from_numpy(protos).to(device),
        has_visual=torch.from_numpy(has_visual).to(device),
    )


class ArraySource:
    """An in-memory support memory over numpy arrays: exact inner-product search, same protocol."""

    def __init__(self, vectors: np.ndarray, class_ids: np.ndarray) -> None:
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.class_ids = np.asarray(class_ids, dtype=np.int64)
        if self.vectors.ndim != 2 or self.class_ids.shape != (self.vectors.shape[0],):
            raise ValueError("ArraySource needs vectors [n, d] and class_ids [n]")

    def __len__(self) -> int:
        return int(self.vectors.shape[0])

    def search(self, queries: np.ndarray, k: int) -> np.ndarray:
        n = len(self)
        rows = np.full((queries.shape[0], k), -1, dtype=np.int64)
        if n == 0:
            return rows
        scores = queries @ self.vectors.T
        kk = min(k, n)
        top = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
        rows[:, :kk] = np.take_along_axis(top, order, axis=1)
        return rows

    def rows(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.vectors[rows], self.class_ids[rows]

    def live_rows(self) -> np.ndarray:
        return np.arange(len(self), dtype=np.int64)

    def class_prototypes(self, class_ids: Any = None) -> tuple[np.ndarray, np.ndarray]:
        ids = np.unique(self.class_ids) if class_ids is None else np.asarray(class_ids, dtype=np.int64)
        dim = self.vectors.shape[1]
        protos = np.zeros((len(ids), dim), dtype=np.float32)
        for i, cid in enumerate(ids):
            members = self.vectors[self.class_ids == cid]
            if len(members):
                mean = members.mean(axis=0)
                protos[i] = mean / max(float(np.linalg.norm(mean)), 1e-12)
        return ids, protos
