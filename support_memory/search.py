"""Exact k-nearest-neighbour search by inner product, one block of rows at a time.

The memory can be far larger than RAM allows to hold as float32, so the search never materialises it: the
store hands over blocks of rows (already float32, with a mask of rows that may be returned) and a running
top-k per query is merged block by block. Scores are computed in float32 even though rows are stored as
float16, so storage precision never leaks into the arithmetic.
"""

from __future__ import annotations

from collections.abc import Container, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from support_memory.errors import InvalidInputError, UnknownEntryError

# Score matrices are kept near this many float32 elements (~32 MB) per block.
SCORE_BLOCK_ELEMENTS = 8_000_000


@dataclass(frozen=True)
class SearchResult:
    """Top-k neighbours per query, best first.

    scores: [q, k] float32 inner products; -inf where fewer than k rows qualified.
    rows: [q, k] int64 row numbers for `SupportMemory.rows`; -1 where fewer than k rows qualified.
    """

    scores: np.ndarray
    rows: np.ndarray


def block_rows_for(n_queries: int, granularity: int) -> int:
    """Rows per block so that the [q, block] score matrix stays near SCORE_BLOCK_ELEMENTS."""
    rows = max(granularity, SCORE_BLOCK_ELEMENTS // max(n_queries, 1))
    return max(granularity, (rows // granularity) * granularity)


class RunningTopK:
    """The best k (score, row) pairs per query seen so far; ties go to the lower row number."""

    def __init__(self, n_queries: int, k: int) -> None:
        self.k = k
        self.scores = np.full((n_queries, k), -np.inf, dtype=np.float32)
        self.rows = np.full((n_queries, k), -1, dtype=np.int64)

    def add(self, scores: np.ndarray, rows: np.ndarray) -> None:
        """Merge a block: scores [q, m] (-inf for rows that may not be returned), rows [m] or [q, m]."""
        if scores.shape[1] == 0:
            return
        if rows.ndim == 1:
            rows = np.broadcast_to(rows, scores.shape)
        if scores.shape[1] > self.k:
            scores, rows = self._preselect(scores, rows)
        all_scores = np.concatenate([self.scores, scores], axis=1)
        all_rows = np.concatenate([self.rows, rows.astype(np.int64, copy=False)], axis=1)
        # Score descending, then row ascending (-1 padding last): deterministic whatever the block size.
        tie_rows = np.where(all_rows < 0, np.iinfo(np.int64).max, all_rows)
        order = np.lexsort((tie_rows, -all_scores), axis=1)[:, : self.k]
        self.scores = np.take_along_axis(all_scores, order, axis=1)
        self.rows = np.take_along_axis(all_rows, order, axis=1)

    def _preselect(self, scores: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The k best of a block per query. argpartition breaks ties at the k-th score arbitrarily, so the
        few queries with a finite tie there are redone with a full (row-ordered) sort."""
        keep = np.argpartition(-scores, self.k - 1, axis=1)[:, : self.k]
        kept_scores = np.take_along_axis(scores, keep, axis=1)
        kept_rows = np.take_along_axis(rows, keep, axis=1)
        kth = kept_scores.min(axis=1)
        tied = np.flatnonzero(((scores >= kth[:, None]).sum(axis=1) > self.k) & np.isfinite(kth))
        for query in tied:
            order = np.lexsort((rows[query], -scores[query]))[: self.k]
            kept_scores[query] = scores[query, order]
            kept_rows[query] = rows[query, order]
        return kept_scores, kept_rows

    def result(self) -> SearchResult:
        rows = np.where(np.isneginf(self.scores), -1, self.rows)
        return SearchResult(scores=self.scores.copy(), rows=rows.astype(np.int64))


class DistinctQueries:
    """The distinct rows of a query matrix, so that a search runs once per distinct row.

    The patches of one image often repeat exactly (flat sky, padding, a uniform wall), and each search costs
    the same per query, so duplicates are pure waste. Rows are compared by their bytes (exact duplicates
    only: near-duplicates may have different neighbours); finding them costs well under a millisecond for
    an image's ~1000 patches.
    """

    def __init__(self, queries: np.ndarray) -> None:
        contiguous = np.ascontiguousarray(queries)
        keys = contiguous.view(np.dtype((np.void, contiguous.dtype.itemsize * contiguous.shape[1]))).ravel()
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        self.n_queries = contiguous.shape[0]
        self.all_distinct = len(first) == self.n_queries
        self.rows = contiguous if self.all_distinct else contiguous[first]
        self._inverse = inverse.reshape(-1)

    def scatter(self, result: SearchResult) -> SearchResult:
        """Results for the distinct rows -> results for every original query, in the original order."""
        if self.all_distinct:
            return result
        return SearchResult(scores=result.scores[self._inverse], rows=result.rows[self._inverse])


def exact_search(
    queries: np.ndarray, k: int, blocks: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray | None]]
) -> SearchResult:
    """Exact top-k by inner product over blocks of (row numbers [m], vectors [m, d] float32, allowed [m])."""
    distinct = DistinctQueries(queries)
    if not distinct.all_distinct:
        return distinct.scatter(exact_search(distinct.rows, k, blocks))
    top = RunningTopK(queries.shape[0], k)
    for row_numbers, vectors, allowed in blocks:
        scores = queries @ vectors.T
        if allowed is not None:
            scores[:, ~allowed] = -np.inf
        top.add(scores, row_numbers)
    return top.result()


def merge_results(results: Iterable[SearchResult], k: int) -> SearchResult:
    """Combine top-k lists over disjoint row sets (e.g. an index plus its not-yet-indexed tail)."""
    results = list(results)
    top = RunningTopK(results[0].scores.shape[0], k)
    for result in results:
        scores = np.where(result.rows < 0, -np.inf, result.scores).astype(np.float32)
        top.add(scores, result.rows)
    return top.result()


def validate_queries(queries: np.ndarray, k: int, dim: int | None, memory_path: Path) -> np.ndarray:
    """Check a search's arguments before any row is read; returns the queries as contiguous float32."""
    if not isinstance(k, int | np.integer) or k < 1:
        raise InvalidInputError(f"k must be a positive integer, got {k!r}")
    queries = np.asarray(queries)
    if queries.ndim != 2 or not np.issubdtype(queries.dtype, np.number):
        raise InvalidInputError(f"queries must be a 2-D numeric array [q, d], got shape {queries.shape}")
    if dim is not None and queries.shape[1] != dim:
        raise InvalidInputError(
            f"queries have dimension {queries.shape[1]} but memory {memory_path} holds dimension {dim}"
        )
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    if not np.isfinite(queries).all():
        raise InvalidInputError("queries contain NaN or infinite values")
    return queries


def class_filter(
    class_ids: Iterable[int] | None, known: Container[int], memory_path: Path
) -> np.ndarray | None:
    """The sorted class ids a search is restricted to (None: all); UnknownEntryError for an unknown id."""
    if class_ids is None:
        return None
    wanted = np.unique(np.asarray(list(class_ids), dtype=np.int64))
    unknown = [int(c) for c in wanted if int(c) not in known]
    if unknown:
        raise UnknownEntryError(f"memory {memory_path} has no class id(s) {unknown}")
    return wanted
