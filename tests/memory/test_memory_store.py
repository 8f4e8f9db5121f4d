"""SupportMemory round trips: put / replace / unchanged / removals, tables, stats, refusals, compaction."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from support_memory import (
    CorruptMemoryError,
    FingerprintMismatchError,
    InvalidInputError,
    NotAMemoryError,
    SourceEntry,
    SupportMemory,
    UnknownEntryError,
)

FP = {"model": "ViT-test", "variant": "maskclip", "window": {"crop": 448, "stride": 224}}
DIM = 16


def unit(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def memory(tmp_path: Path) -> SupportMemory:
    return SupportMemory.open(tmp_path / "memory")


def snapshot_files(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_put_statuses_and_tables(memory: SupportMemory, rng: np.random.Generator) -> None:
    a1 = unit(rng, 3)
    assert memory.fingerprint is None
    assert memory.put_source("img-a", a1, ["cat", "dog", "cat"], fingerprint=FP, content_key="k1") == "added"
    assert memory.fingerprint == FP
    same_key = memory.put_source(
        "img-a", unit(rng, 3), ["cat", "dog", "cat"], fingerprint=FP, content_key="k1"
    )
    assert same_key == "unchanged"
    a2 = unit(rng, 2)
    assert memory.put_source("img-a", a2, ["cat", "bird"], fingerprint=FP, content_key="k2") == "replaced"
    b = unit(rng, 2)
    assert memory.put_source("img-b", b, ["cat", "dog"], fingerprint=FP, content_key="k") == "added"

    classes = {c.name: c for c in memory.classes()}
    assert sorted(classes) == ["bird", "cat", "dog"]
    assert (classes["cat"].n_prototypes, classes["cat"].n_sources) == (2, 2)
    assert (classes["dog"].n_prototypes, classes["dog"].n_sources) == (1, 1)
    assert [s.source_id for s in memory.sources()] == ["img-a", "img-b"]
    source_a = memory.sources()[0]
    assert (source_a.content_key, source_a.class_names, source_a.n_prototypes) == ("k2", ("cat", "bird"), 2)

    ids, protos = memory.class_prototypes([classes["cat"].id])
    expected = a2[0].astype(np.float16).astype(np.float64) + b[0].astype(np.float16).astype(np.float64)
    np.testing.assert_allclose(protos[0], expected / np.linalg.norm(expected), atol=1e-6)
    assert ids.tolist() == [classes["cat"].id]
    stats = memory.stats()
    assert (stats["n_prototypes"], stats["n_classes"], stats["n_sources"], stats["dim"]) == (4, 3, 2, DIM)
    assert stats["n_dead_rows"] == 3 and stats["bytes_on_disk"] > 0
    memory.check()

    reopened = SupportMemory.open(memory.path, create=False)
    assert reopened.classes() == memory.classes() and reopened.sources() == memory.sources()
    np.testing.assert_array_equal(reopened.class_prototypes()[1], memory.class_prototypes()[1])


def test_rows_round_trip_in_float16(memory: SupportMemory, rng: np.random.Generator) -> None:
    vectors = unit(rng, 5)
    memory.put_source("s", vectors, ["a", "b", "a", "c", "b"], fingerprint=FP)
    result = memory.search(vectors, 1, exact=True)
    stored, class_ids = memory.rows(result.rows[:, 0])
    np.testing.assert_array_equal(stored, vectors.astype(np.float16).astype(np.float32))
    names = {c.id: c.name for c in memory.classes()}
    assert [names[int(c)] for c in class_ids] == ["a", "b", "a", "c", "b"]
    with pytest.raises(InvalidInputError, match="-1"):
        memory.rows(np.array([0, -1]))


def test_class_texts(memory: SupportMemory, rng: np.random.Generator) -> None:
    memory.put_source("s1", unit(rng, 3), ["bus", "my-bag", "car"], fingerprint=FP,
                      class_texts={"my-bag": None, "car": "a photo of a car"})  # fmt: skip
    info = {c.name: c for c in memory.classes()}
    assert (info["bus"].text, info["bus"].has_text) == ("bus", True)
    assert (info["my-bag"].text, info["my-bag"].has_text) == (None, False)
    assert info["car"].text == "a photo of a car"
    # A later put without the key keeps the prompt; an explicit one updates it, even if rows are unchanged.
    memory.put_source("s2", unit(rng, 1), ["car"], fingerprint=FP)
    assert {c.name: c.text for c in memory.classes()}["car"] == "a photo of a car"
    status = memory.put_source("s2", unit(rng, 1), ["car"], fingerprint=FP, class_texts={"car": "automobile"})
    assert status == "unchanged"
    assert {c.name: c.text for c in SupportMemory.open(memory.path).classes()}["car"] == "automobile"


def test_remove_source_and_class(memory: SupportMemory, rng: np.random.Generator) -> None:
    memory.put_sources(
        [
            SourceEntry("s1", unit(rng, 2), ["cat", "dog"], content_key="1"),
            SourceEntry("s2", unit(rng, 1), ["cat"], content_key="1"),
            SourceEntry("s3", unit(rng, 1), ["dog"], content_key="1"),
        ],
        fingerprint=FP,
    )
    memory.remove_source("s3")
    assert [s.source_id for s in memory.sources()] == ["s1", "s2"]
    assert {c.name: c.n_prototypes for c in memory.classes()} == {"cat": 2, "dog": 1}
    memory.remove_class("cat")
    # s2 held only cat and is gone; s1 keeps dog and, being pruned, is replaced on the next put.
    assert [(s.source_id, s.class_names) for s in memory.sources()] == [("s1", ("dog",))]
    assert [c.name for c in memory.classes()] == ["dog"]
    memory.check()
    status = memory.put_source("s1", unit(rng, 2), ["cat", "dog"], fingerprint=FP, content_key="1")
    assert status == "replaced"
    cat = next(c for c in memory.classes() if c.name == "cat")
    assert cat.id == 2, "class ids are never reused"
    with pytest.raises(UnknownEntryError, match="nope"):
        memory.remove_source("nope")
    with pytest.raises(UnknownEntryError, match="nope"):
        memory.remove_class("nope")
    memory.check()


def test_compaction_keeps_content(tmp_path: Path, rng: np.random.Generator) -> None:
    memory = SupportMemory.open(tmp_path / "memory", compact_min_dead=8)
    vectors = {f"s{i}": unit(rng, 4) for i in range(10)}
    for source, rows in vectors.items():
        memory.put_source(source, rows, ["a", "b", "a", "c"], fingerprint=FP)
    for i in range(0, 10, 2):
        memory.remove_source(f"s{i}")
    stats = memory.stats()
    # 8 dead rows out of 40 (then of 28) pass the threshold twice: two compactions, no dead rows left.
    assert (stats["generation"], stats["n_rows_stored"], stats["n_dead_rows"]) == (3, 20, 0)
    memory.check()
    assert stats["n_segments"] == 1
    # The segments compaction retired stay readable for older commits until the retention time passes.
    assert len(list((memory.path / "segments").iterdir())) > 1
    memory.collect_garbage(older_than_s=0)
    assert len(list((memory.path / "segments").iterdir())) == 1
    memory.check()
    queries = np.concatenate([vectors[f"s{i}"] for i in range(1, 10, 2)])
    result = memory.search(queries, 1)
    np.testing.assert_allclose(result.scores[:, 0], 1.0, atol=2e-3)
    stored, _ = memory.rows(result.rows[:, 0])
    np.testing.assert_array_equal(stored, queries.astype(np.float16).astype(np.float32))


def test_fingerprint_mismatch_refused(memory: SupportMemory, rng: np.random.Generator) -> None:
    memory.put_source("s", unit(rng, 1), ["a"], fingerprint=FP)
    before = snapshot_files(memory.path)
    other = {**FP, "window": {"crop": 336, "stride": 224}}
    with pytest.raises(FingerprintMismatchError) as error:
        memory.put_source("t", unit(rng, 1), ["a"], fingerprint=other)
    message = str(error.value)
    assert "window.crop" in message and "336" in message and "another memory" in message
    assert "\n" not in message
    assert "--" not in message  # support_memory names no option of any command line
    assert snapshot_files(memory.path) == before


@pytest.mark.parametrize(
    ("vectors", "names", "match"),
    [
        (np.ones((2, DIM + 1), np.float32) / np.sqrt(DIM + 1), ["a", "b"], "dimension"),
        (np.full((1, DIM), np.nan, np.float32), ["a"], "NaN"),
        (np.ones(DIM, np.float32) / 4, ["a"], "2-D"),
        (np.ones((1, DIM), np.float32), ["a"], "normalised"),
        (np.ones((2, DIM), np.float32) / 4, ["a"], "one name per row"),
        (np.ones((1, DIM), np.float32) / 4, [""], "non-empty"),
    ],
)
def test_bad_vectors_refused_store_untouched(
    memory: SupportMemory, rng: np.random.Generator, vectors: np.ndarray, names: list[str], match: str
) -> None:
    memory.put_source("s", unit(rng, 1), ["a"], fingerprint=FP)
    before = snapshot_files(memory.path)
    with pytest.raises(InvalidInputError, match=match):
        memory.put_source("t", vectors, names, fingerprint=FP)
    assert snapshot_files(memory.path) == before
    memory.check()


def test_batch_with_a_bad_entry_writes_nothing(memory: SupportMemory, rng: np.random.Generator) -> None:
    good = SourceEntry("good", unit(rng, 1), ["a"])
    bad = SourceEntry("bad", unit(rng, 1, DIM + 1), ["a"])
    before = snapshot_files(memory.path)
    with pytest.raises(InvalidInputError, match="dimension"):
        memory.put_sources([good, bad], fingerprint=FP)
    assert snapshot_files(memory.path) == before and memory.sources() == []
    with pytest.raises(InvalidInputError, match="twice"):
        memory.put_sources([good, good], fingerprint=FP)


def test_not_a_memory_refused(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "cat.jpg").write_bytes(b"jpeg")
    with pytest.raises(NotAMemoryError, match="not a support memory"):
        SupportMemory.open(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["cat.jpg"]
    with pytest.raises(NotAMemoryError, match="is a file"):
        SupportMemory.open(folder / "cat.jpg")
    with pytest.raises(NotAMemoryError, match="no support memory"):
        SupportMemory.open(tmp_path / "missing", create=False)
    assert not (tmp_path / "missing").exists()
    with pytest.raises(NotAMemoryError, match="cannot create a support memory"):
        SupportMemory.open(folder / "cat.jpg" / "memory")


def test_damaged_manifest_and_rows_detected(memory: SupportMemory, rng: np.random.Generator) -> None:
    memory.put_source("s", unit(rng, 3), ["a", "b", "a"], fingerprint=FP)
    record_path = memory.path / "log" / "c000000000001.json"
    payload = json.loads(record_path.read_text())
    payload["classes"][0]["count"] += 1
    record_path.write_text(json.dumps(payload))
    with pytest.raises(CorruptMemoryError, match="class id 0 has 2 live rows but the table says 3"):
        SupportMemory.open(memory.path).check()
    record_path.write_text("{not json")
    with pytest.raises(CorruptMemoryError, match="damaged: log/c000000000001.json: unreadable"):
        SupportMemory.open(memory.path)


def test_live_rows_and_source_rows_follow_removals(tmp_path):
    from support_memory import SupportMemory

    memory = SupportMemory.open(tmp_path / "m")
    fingerprint = {"model": "synthetic"}
    eye = np.eye(4, dtype=np.float32)
    memory.put_source("a", eye[:2], ["x", "y"], fingerprint=fingerprint)
    memory.put_source("b", eye[2:], ["x", "z"], fingerprint=fingerprint)
    assert memory.live_rows().tolist() == [0, 1, 2, 3]
    memory.remove_source("a")
    live = memory.live_rows()
    assert live.size == 2 and np.array_equal(np.sort(live), np.sort(memory.source_rows("b")))
    vectors, _ = memory.rows(live)
    np.testing.assert_allclose(np.abs(vectors), np.abs(eye[2:]), atol=1e-3)


def test_counts_without_walking_the_folder_agree_with_stats(memory: SupportMemory, rng) -> None:
    assert (memory.n_prototypes, memory.commit, memory.dim) == (0, 0, None)
    memory.put_source("img-a", unit(rng, 3), ["cat", "dog", "cat"], fingerprint=FP)
    memory.put_source("img-b", unit(rng, 2), ["cat", "dog"], fingerprint=FP)
    memory.remove_source("img-a")
    stats = memory.stats()
    assert (memory.n_prototypes, memory.commit, memory.dim) == (2, 3, DIM)
    assert (stats["n_prototypes"], stats["commit"], stats["dim"]) == (2, 3, DIM)


def test_sixteen_small_segments_merge_into_one_without_renumbering(memory: SupportMemory, rng) -> None:
    added = {f"s{i}": unit(rng, 2) for i in range(16)}
    for source, vectors in added.items():
        memory.put_source(source, vectors, ["a", "b"], fingerprint=FP)
    assert memory.stats()["n_segments"] == 1  # the 16th add merged the 16 one-image segments
    # On disk: the merged segment and the 15 committed ones it retired (kept for older commits); the
    # 16th add's own segment, merged before any commit named it, is gone.
    assert len(list((memory.path / "segments").iterdir())) == 16
    for source, vectors in added.items():
        stored, _ = memory.rows(memory.source_rows(source))
        np.testing.assert_array_equal(stored, vectors.astype(np.float16).astype(np.float32))
    memory.put_source("late", unit(rng, 1), ["a"], fingerprint=FP)
    assert memory.stats()["n_segments"] == 2 and memory.source_rows("late").tolist() == [32]
    memory.check()


def test_every_add_writes_only_new_objects(memory: SupportMemory, rng) -> None:
    memory.put_source("first", unit(rng, 3), ["a", "b", "c"], fingerprint=FP)

    def files() -> dict[str, tuple[int, int]]:
        return {str(p.relative_to(memory.path)): (p.stat().st_ino, p.stat().st_mtime_ns)
                for p in memory.path.rglob("*") if p.is_file()}  # fmt: skip

    for i in range(5):
        before = files()
        memory.put_source(f"s{i}", unit(rng, 2), ["a", "b"], fingerprint=FP)
        after = files()
        assert all(after[name] == stamp for name, stamp in before.items()), "an existing file was rewritten"
        assert {name.split("/")[0] for name in set(after) - set(before)} == {"log", "segments"}


def test_garbage_collection_spares_young_orphans_and_deletes_old_ones(memory: SupportMemory, rng) -> None:
    from support_memory.rows import SEGMENTS

    memory.put_source("a", unit(rng, 2), ["a", "b"], fingerprint=FP)
    young = memory.path / SEGMENTS / "s09999999999999999999-deadbeef"  # "written" far in the future
    old = memory.path / SEGMENTS / "s00000000000000000001-deadbeef"  # written in 1970 by a killed writer
    for orphan in (young, old):
        orphan.mkdir()
        (orphan / "zarr.json").write_text("{}")
    memory.collect_garbage()
    assert young.exists() and not old.exists()
    memory.check()


def test_live_rows_derived_by_writers_equal_a_fresh_walk(tmp_path: Path, rng) -> None:
    memory = SupportMemory.open(tmp_path / "memory", compact_min_dead=10)
    memory.live_rows()  # the first state computes its mask; every later one is derived from the previous
    derived_steps = 0
    for step in range(60):
        roll = rng.random()
        sources = [s.source_id for s in memory.sources()]
        if roll < 0.6 or not sources:
            n = int(rng.integers(1, 4))
            memory.put_source(f"s{rng.integers(12)}", unit(rng, n), list(rng.choice(["a", "b", "c"], n)),
                              fingerprint=FP, content_key=str(step))  # fmt: skip
        elif roll < 0.85:
            memory.remove_source(str(rng.choice(sources)))
        else:
            names = [c.name for c in memory.classes()]
            memory.remove_class(str(rng.choice(names)))
        state = memory._state
        fresh = SupportMemory.open(memory.path, create=False)._state
        assert state.n_live == fresh.n_live
        derived = state.cached_live_mask()
        assert derived is None or np.array_equal(derived, fresh.live_mask())
        derived_steps += derived is not None
    assert derived_steps >= 40  # compactions start afresh; the other commits derive their mask
    memory.check()
