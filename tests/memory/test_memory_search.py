"""Exact search agrees with a brute-force numpy reference, with and without class restriction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from support_memory import IndexConfig, InvalidInputError, SourceEntry, SupportMemory, UnknownEntryError
from support_memory.search import DistinctQueries, RunningTopK, exact_search

FP = {"model": "test"}


def unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def brute_force(queries: np.ndarray, stored: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    scores = queries @ stored.T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, axis=1), order


@pytest.fixture(scope="module")
def big_memory(tmp_path_factory: pytest.TempPathFactory) -> tuple[SupportMemory, np.ndarray, np.ndarray]:
    """100,000 random unit prototypes (d=512, 40 classes), stored in 500 sources of 200 rows; one removed."""
    rng = np.random.default_rng(42)
    n, dim, per_source = 100_000, 512, 200
    vectors = unit(rng, n, dim)
    labels = rng.integers(0, 40, size=n)
    entries = [
        SourceEntry(
            f"src{i}",
            vectors[i * per_source : (i + 1) * per_source],
            [f"class{c}" for c in labels[i * per_source : (i + 1) * per_source]],
        )  # fmt: skip
        for i in range(n // per_source)
    ]
    # Exact search only: this test is about the exact path, whatever faiss is installed.
    path = tmp_path_factory.mktemp("big") / "memory"
    memory = SupportMemory.open(path, index_config=IndexConfig(enabled=False))
    memory.put_sources(entries, fingerprint=FP)
    memory.remove_source("src3")  # rows 600..799 become dead and must never be returned
    alive = np.ones(n, dtype=bool)
    alive[600:800] = False
    return memory, vectors, np.where(alive, labels, -1)


def test_exact_search_matches_brute_force(big_memory: tuple[SupportMemory, np.ndarray, np.ndarray]) -> None:
    memory, vectors, labels = big_memory
    rng = np.random.default_rng(7)
    queries = unit(rng, 48, 512)
    queries[:8] = vectors[[0, 650, 1000, 5000, 99_999, 42, 700, 12345]]  # includes dead rows 650 and 700
    stored = vectors.astype(np.float16).astype(np.float32)
    candidates = np.flatnonzero(labels >= 0)
    ref_scores, ref_local = brute_force(queries, stored[candidates], 4)
    ref_rows = candidates[ref_local]
    result = memory.search(queries, 4)
    np.testing.assert_array_equal(result.rows, ref_rows)
    np.testing.assert_allclose(result.scores, ref_scores, atol=1e-5)
    assert result.rows[0, 0] == 0 and result.rows[4, 0] == 99_999
    assert not np.isin(result.rows, np.arange(600, 800)).any()


def test_class_restricted_search(big_memory: tuple[SupportMemory, np.ndarray, np.ndarray]) -> None:
    memory, vectors, labels = big_memory
    names = {c.name: c.id for c in memory.classes()}
    wanted_names = ["class3", "class17"]
    class_ids = [names[n] for n in wanted_names]
    keep = np.isin(labels, [3, 17])
    rng = np.random.default_rng(8)
    queries = unit(rng, 16, 512)
    stored = vectors.astype(np.float16).astype(np.float32)
    candidates = np.flatnonzero(keep)
    ref_scores, ref_local = brute_force(queries, stored[candidates], 5)
    result = memory.search(queries, 5, class_ids=class_ids)
    np.testing.assert_array_equal(result.rows, candidates[ref_local])
    np.testing.assert_allclose(result.scores, ref_scores, atol=1e-5)
    _, found_classes = memory.rows(result.rows.ravel())
    assert set(found_classes.tolist()) <= set(class_ids)
    with pytest.raises(UnknownEntryError):
        memory.search(queries, 5, class_ids=[10_000])


def test_fewer_rows_than_k_padded(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    memory = SupportMemory.open(tmp_path / "memory")
    empty = memory.search(unit(rng, 2, 8), 3)
    assert (empty.rows == -1).all() and np.isneginf(empty.scores).all()
    memory.put_source("s", unit(rng, 2, 8), ["a", "b"], fingerprint=FP)
    result = memory.search(unit(rng, 3, 8), 4)
    assert result.rows.shape == (3, 4) and result.rows.dtype == np.int64 and result.scores.dtype == np.float32
    assert (np.sort(result.rows[:, :2], axis=1) == [0, 1]).all() and (result.rows[:, 2:] == -1).all()
    only_b = memory.search(unit(rng, 3, 8), 2, class_ids=[1])
    assert (only_b.rows[:, 0] == 1).all() and (only_b.rows[:, 1] == -1).all()
    with pytest.raises(InvalidInputError, match="dimension"):
        memory.search(unit(rng, 1, 9), 1)
    with pytest.raises(InvalidInputError, match="positive"):
        memory.search(unit(rng, 1, 8), 0)


def test_running_top_k_is_independent_of_block_split() -> None:
    rng = np.random.default_rng(3)
    scores = np.round(rng.standard_normal((5, 300)), 1).astype(np.float32)  # many ties
    rows = np.arange(300)
    whole = RunningTopK(5, 7)
    whole.add(scores, rows)
    pieces = RunningTopK(5, 7)
    for start in range(0, 300, 37):
        pieces.add(scores[:, start : start + 37], rows[start : start + 37])
    np.testing.assert_array_equal(whole.result().rows, pieces.result().rows)
    ref_rows = np.argsort(-scores, axis=1, kind="stable")[:, :7]  # ties go to the lower row
    np.testing.assert_array_equal(whole.result().rows, ref_rows)


def test_without_faiss_large_memories_search_exactly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import support_memory.index

    monkeypatch.setattr(support_memory.index, "faiss_available", lambda: False)
    rng = np.random.default_rng(2)
    memory = SupportMemory.open(tmp_path / "memory", index_config=IndexConfig(approximate_threshold=10))
    stored = unit(rng, 50, 8)
    memory.put_source("s", stored, ["a"] * 50, fingerprint=FP)
    queries = unit(rng, 6, 8)
    _, ref_rows = brute_force(queries, stored.astype(np.float16).astype(np.float32), 3)
    np.testing.assert_array_equal(memory.search(queries, 3).rows, ref_rows)
    assert memory.build_index() is None and not (memory.path / "index").exists()


def test_duplicate_queries_are_searched_once_and_scattered_back() -> None:
    rng = np.random.default_rng(4)
    stored = unit(rng, 300, 16)
    distinct = unit(rng, 5, 16)
    picks = np.array([3, 0, 3, 3, 1, 4, 0, 2, 2])
    queries = distinct[picks]
    dedup = DistinctQueries(queries)
    assert dedup.rows.shape == (5, 16) and not dedup.all_distinct
    blocks = ((np.arange(s, s + 100), stored[s : s + 100], None) for s in range(0, 300, 100))
    result = exact_search(queries, 3, blocks)
    ref_scores, ref_rows = brute_force(queries, stored, 3)
    np.testing.assert_array_equal(result.rows, ref_rows)
    np.testing.assert_allclose(result.scores, ref_scores, atol=1e-6)
    assert DistinctQueries(distinct).all_distinct
