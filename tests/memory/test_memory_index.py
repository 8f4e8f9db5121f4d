"""The approximate (faiss) path: high recall on clustered data, live-row filtering, persistence, fallback."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from support_memory import IndexConfig, SourceEntry, SupportMemory
from support_memory.index import faiss_available

pytestmark = pytest.mark.skipif(not faiss_available(), reason="faiss-cpu is not installed (extra rns[faiss])")

FP = {"model": "test"}
DIM = 64


def clustered(rng: np.random.Generator, centres: np.ndarray, n: int, spread: float) -> np.ndarray:
    picks = centres[rng.integers(0, len(centres), size=n)]
    vectors = picks + rng.standard_normal(picks.shape).astype(np.float32) * (spread / np.sqrt(DIM))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def fill(memory: SupportMemory, vectors: np.ndarray, prefix: str, per_source: int = 500) -> None:
    entries = [
        SourceEntry(f"{prefix}{i}", vectors[s : s + per_source], ["a", "b"] * (per_source // 2))
        for i, s in enumerate(range(0, len(vectors), per_source))
    ]
    memory.put_sources(entries, fingerprint=FP)


def recall_at_k(approx: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(e)) / exact.shape[1] for a, e in zip(approx, exact, strict=True)]))


def test_approximate_search_recall_updates_and_persistence(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    centres = clustered(rng, np.eye(DIM, dtype=np.float32), 200, 8.0)  # 200 random unit centres
    config = IndexConfig(approximate_threshold=10_000)
    memory = SupportMemory.open(tmp_path / "memory", index_config=config)
    fill(memory, clustered(rng, centres, 20_000, 0.75), "s")
    queries = clustered(rng, centres, 300, 1.0)

    approx = memory.search(queries, 4)
    exact = memory.search(queries, 4, exact=True)
    assert memory.stats()["index"]["n_indexed"] == 20_000, "the first approximate search builds the index"
    assert recall_at_k(approx.rows, exact.rows) >= 0.95
    found = approx.rows >= 0
    stored, _ = memory.rows(approx.rows[found])
    repeated = np.repeat(queries, 4, axis=0)[found.ravel()]
    np.testing.assert_allclose(approx.scores[found], np.einsum("qd,qd->q", repeated, stored), atol=1e-5)

    # Added rows are found at once (exact tail) and removed rows never come back.
    extra = clustered(rng, centres, 500, 0.75)
    memory.put_source("new", extra, ["c"] * 500, fingerprint=FP)
    memory.remove_source("s0")
    hits = memory.search(extra[:50], 1)
    assert (memory.rows(hits.rows[:, 0])[1] == next(c.id for c in memory.classes() if c.name == "c")).all()
    dead = memory.search(clustered(rng, centres, 200, 1.0), 4)
    assert not np.isin(dead.rows, np.arange(0, 500)).any()

    # Another process (a fresh object) reuses the saved index; a compaction invalidates it safely.
    reopened = SupportMemory.open(memory.path, index_config=config)
    again = reopened.search(queries, 4)
    assert recall_at_k(again.rows, reopened.search(queries, 4, exact=True).rows) >= 0.95
    reopened.compact()
    assert reopened.stats()["index"]["valid"] is False
    after = reopened.search(queries, 4)
    assert recall_at_k(after.rows, reopened.search(queries, 4, exact=True).rows) >= 0.95
    assert reopened.stats()["index"]["valid"] is True


def test_disabled_or_below_threshold_is_exact(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    vectors = clustered(rng, np.eye(DIM, dtype=np.float32), 3000, 4.0)
    memory = SupportMemory.open(tmp_path / "memory", index_config=IndexConfig(approximate_threshold=5000))
    fill(memory, vectors, "s")
    memory.search(vectors[:10], 4)
    assert memory.stats()["index"] is None and not (memory.path / "index").exists()


def test_duplicate_queries_get_the_answers_of_their_first_copy(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    centres = clustered(rng, np.eye(DIM, dtype=np.float32), 50, 8.0)
    memory = SupportMemory.open(tmp_path / "memory", index_config=IndexConfig(approximate_threshold=1000))
    fill(memory, clustered(rng, centres, 5000, 0.75), "s")
    distinct = clustered(rng, centres, 40, 1.0)
    picks = rng.integers(0, 40, size=200)
    repeated = distinct[picks]  # a flat image region: the same patch feature many times
    for exact in (False, True):
        once = memory.search(distinct, 4, exact=exact)
        many = memory.search(repeated, 4, exact=exact)
        np.testing.assert_array_equal(many.rows, once.rows[picks])
        # Scores are float32 dot products whose summation order depends on how many queries share a
        # block (200 here, 40 there), so they agree to rounding, not bit for bit.
        np.testing.assert_allclose(many.scores, once.scores[picks], rtol=0, atol=1e-5)


def test_adds_never_rewrite_the_saved_index_until_it_goes_stale(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    centres = clustered(rng, np.eye(DIM, dtype=np.float32), 100, 8.0)
    config = IndexConfig(approximate_threshold=1000, exact_tail_rows=300, rebuild_growth=0.1,
                         background=False)  # fmt: skip
    memory = SupportMemory.open(tmp_path / "memory", index_config=config)
    fill(memory, clustered(rng, centres, 10_000, 0.75), "s")
    memory.build_index()
    assert memory.stats()["index"]["n_indexed"] == 10_000
    saved = sorted((memory.path / "index").iterdir())

    # A small tail is searched exactly: nothing is added.
    memory.put_source("small", clustered(rng, centres, 200, 0.75), ["c"] * 200, fingerprint=FP)
    small_rows = np.arange(10_000, 10_200)
    assert (memory.search(memory.rows(small_rows)[0], 1).rows[:, 0] == small_rows).all()
    assert memory._index._loaded.n_indexed == 10_000

    # A larger tail is added to the loaded index in RAM; the saved index is not rewritten.
    memory.put_source("large", clustered(rng, centres, 500, 0.75), ["c"] * 500, fingerprint=FP)
    new_rows = np.arange(10_200, 10_700)
    assert (memory.search(memory.rows(new_rows)[0], 1).rows[:, 0] == new_rows).all()
    assert memory._index._loaded.n_indexed == 10_700
    assert sorted((memory.path / "index").iterdir()) == saved
    fresh = SupportMemory.open(memory.path, index_config=config)  # loads the saved index, adds its tail
    assert (fresh.search(fresh.rows(new_rows)[0], 1).rows[:, 0] == new_rows).all()
    assert sorted((memory.path / "index").iterdir()) == saved

    # Past 10 % more rows than it was trained for, the index is retrained and saved.
    memory.put_source("more", clustered(rng, centres, 600, 0.75), ["c"] * 600, fingerprint=FP)
    memory.search(clustered(rng, centres, 5, 1.0), 1)
    described = memory.stats()["index"]
    assert (described["n_indexed"], described["n_trained_for"]) == (11_300, 11_300)


def test_reindex_retrains_now(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    centres = clustered(rng, np.eye(DIM, dtype=np.float32), 50, 8.0)
    memory = SupportMemory.open(tmp_path / "memory", index_config=IndexConfig(approximate_threshold=1000))
    fill(memory, clustered(rng, centres, 3000, 0.75), "s")
    memory.build_index()
    memory.put_source("more", clustered(rng, centres, 400, 0.75), ["c"] * 400, fingerprint=FP)
    assert memory.stats()["index"]["n_trained_for"] == 3000
    described = memory.reindex()
    assert described is not None and (described["n_indexed"], described["n_trained_for"]) == (3400, 3400)


def test_index_saved_by_an_older_layout_is_rebuilt(tmp_path: Path) -> None:
    rng = np.random.default_rng(10)
    centres = clustered(rng, np.eye(DIM, dtype=np.float32), 50, 8.0)
    config = IndexConfig(approximate_threshold=1000)
    memory = SupportMemory.open(tmp_path / "memory", index_config=config)
    fill(memory, clustered(rng, centres, 3000, 0.75), "s")
    memory.build_index()
    meta_path = memory.path / "index" / "meta.json"
    meta = json.loads(meta_path.read_text())
    del meta["layout"]  # as written before layouts were recorded
    meta_path.write_text(json.dumps(meta))
    reopened = SupportMemory.open(memory.path, index_config=config)
    assert reopened.stats()["index"]["valid"] is False
    reopened.search(clustered(rng, centres, 5, 1.0), 4)
    assert reopened.stats()["index"]["valid"] is True
    assert json.loads(meta_path.read_text())["file"] != meta["file"]
