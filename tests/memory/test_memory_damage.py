"""The memory on a bad disk: damaged segment files and commit records are one line naming the part,
`check()` finds every damaged part, and `repair()` keeps every intact source, lists what it dropped and
deletes nothing (issue 22, items 11-13).

Each case damages a small memory of three sources, one segment (and one commit) each, the way a bad disk
or a careless hand would, and checks the reads, the full check, the repair and the work after it.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from support_memory import CorruptMemoryError, SourceEntry, SupportMemory
from support_memory.errors import DamagedMemoryError

FP = {"model": "synthetic", "dim": 16}
DIM = 16


def unit(seed: int, n: int = 3) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def put(memory: SupportMemory, source_id: str, seed: int) -> None:
    entry = SourceEntry(source_id, unit(seed), ["car", "road", "car"], content_key=f"k{seed}",
                        meta={"image": f"/photos/{source_id}.jpg"})  # fmt: skip
    memory.put_sources([entry], fingerprint=FP)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    memory = SupportMemory.open(tmp_path / "memory")
    for i in range(3):
        put(memory, f"s{i}", i)
    return memory.path


def segment_folder(path: Path, index: int) -> Path:
    """The folder of the index-th segment written (names sort by creation time)."""
    return sorted((path / "segments").iterdir())[index]


def record(path: Path, seq: int) -> Path:
    return path / "log" / f"c{seq:012d}.json"


def flip(file: Path, offset: int, mask: int) -> None:
    data = bytearray(file.read_bytes())
    data[offset] ^= mask
    file.write_bytes(bytes(data))


def huge_shape(folder: Path) -> None:
    meta = json.loads((folder / "vectors" / "zarr.json").read_text())
    meta["shape"] = [10**12, DIM]
    (folder / "vectors" / "zarr.json").write_text(json.dumps(meta))


SEGMENT_DAMAGE: dict[str, Callable[[Path], None]] = {
    "truncated vector chunk": lambda s: (s / "vectors/c/0/0").write_bytes(b"\x00" * 10),
    "emptied class chunk": lambda s: (s / "class_ids/c/0").write_bytes(b""),
    "deleted class chunk": lambda s: (s / "class_ids/c/0").unlink(),
    "broken group zarr.json": lambda s: (s / "zarr.json").write_text("{broken"),
    "array zarr.json declaring 10^12 rows": huge_shape,
    "flipped exponent bits": lambda s: flip(s / "vectors/c/0/0", 33, 0x7C),
    "deleted segment": shutil.rmtree,
}


def one_line_naming(error: pytest.ExceptionInfo, part: str) -> None:
    message = str(error.value)
    assert "\n" not in message and part in message and "repair()" in message, message


@pytest.mark.parametrize("damage", sorted(SEGMENT_DAMAGE))
def test_a_damaged_segment_is_named_checked_and_repaired(path: Path, damage: str) -> None:
    folder = segment_folder(path, 1)  # holds source s1 only
    SEGMENT_DAMAGE[damage](folder)
    memory = SupportMemory.open(path, create=False)
    # Reads that need the damaged part stop in one line naming it; nothing is written.
    log_before = sorted(p.name for p in (path / "log").iterdir())
    with pytest.raises(DamagedMemoryError) as error:
        memory.search(unit(7, 2), 4)
    one_line_naming(error, folder.name)
    with pytest.raises(DamagedMemoryError):
        memory.rows(memory.source_rows("s1"))
    with pytest.raises(DamagedMemoryError):
        put(memory, "s1", 11)  # replacing s1 must read its rows to take them out of the class sums
    assert sorted(p.name for p in (path / "log").iterdir()) == log_before
    # A write that needs nothing from the damaged part commits (it cannot make the damage worse).
    put(memory, "s3", 3)
    # The full check names the part, whichever process runs it.
    with pytest.raises(DamagedMemoryError) as error:
        SupportMemory.open(path, create=False).check()
    one_line_naming(error, folder.name)

    result = SupportMemory.open(path, create=False, load=False).repair()
    assert sorted(result.kept) == ["s0", "s2", "s3"]
    assert [(d.source_id, d.meta["image"]) for d in result.dropped] == [("s1", "/photos/s1.jpg")]
    assert f"segments/{folder.name}" in result.kept_objects
    report = json.loads((path / result.report).read_text())
    assert report["dropped"][0]["source_id"] == "s1" and f"segments/{folder.name}" in report["protected"]

    repaired = SupportMemory.open(path, create=False)
    repaired.check()
    assert [s.source_id for s in repaired.sources()] == ["s0", "s2", "s3"]
    assert repaired.search(unit(7, 2), 4).rows.min() >= 0
    put(repaired, "s4", 4)
    repaired.collect_garbage(older_than_s=0)
    if damage != "deleted segment":  # nothing a person could still recover is deleted
        assert folder.exists()
    repaired.check()
    assert SupportMemory.open(path, create=False, load=False).repair().commit is None


def test_bytes_flipped_within_the_norm_tolerance_are_caught_by_the_full_check(path: Path) -> None:
    """A flipped low mantissa bit leaves a unit vector (no cheap check can see it): the rows digest can."""
    flip(segment_folder(path, 1) / "vectors/c/0/0", 40, 0x01)
    memory = SupportMemory.open(path, create=False)
    memory.search(unit(7, 2), 4)
    damage = memory.diagnose()
    assert any("digest mismatch" in d.problem for d in damage), damage
    result = memory.repair()
    assert sorted(result.kept) == ["s0", "s2"] and [d.source_id for d in result.dropped] == ["s1"]
    SupportMemory.open(path, create=False).check()


def _edit(path: Path, seq: int, change: Callable[[dict], None]) -> None:
    payload = json.loads(record(path, seq).read_text())
    change(payload)
    record(path, seq).write_text(json.dumps(payload))


RECORD_EDITS: dict[str, tuple[int, Callable[[dict], None], str]] = {
    "negative count": (2, lambda p: p["classes"][0].update(count=-3), "has -3 prototypes"),
    "range past the rows": (3, lambda p: p["put"][0].update(ranges=[[6, 90]]), "outside the 9 stored rows"),
    "class id outside the table": (2, lambda p: p["classes"][1].update(id=40), "outside [0, 2)"),
    "segment name leaving the folder": (3, lambda p: p["segments"][0].__setitem__(0, "../../x"),
                                        "is not a segment"),
    "two sources on the same rows": (3, lambda p: p["put"][0].update(ranges=[[0, 3]]),
                                     "claim some rows twice"),
}


@pytest.mark.parametrize("edit", sorted(RECORD_EDITS))
def test_a_record_edited_into_other_valid_json_is_refused_and_repaired(path: Path, edit: str) -> None:
    seq, change, needle = RECORD_EDITS[edit]
    _edit(path, seq, change)
    with pytest.raises(DamagedMemoryError) as error:
        memory = SupportMemory.open(path, create=False)
        memory.search(unit(7, 2), 4)
    one_line_naming(error, f"log/c{seq:012d}.json")
    assert needle in str(error.value)
    damaged = SupportMemory.open(path, create=False, load=False)
    assert any(d.part == f"log/c{seq:012d}.json" for d in damaged.diagnose())
    result = damaged.repair()
    # Every source's rows still hash to the digest written with them: all three are intact.
    assert sorted(result.kept) == ["s0", "s1", "s2"] and result.dropped == []
    repaired = SupportMemory.open(path, create=False)
    repaired.check()
    assert repaired.stats()["n_dead_rows"] == 0 and {c.n_prototypes for c in repaired.classes()} == {3, 6}
    put(repaired, "s3", 3)
    repaired.check()


def test_a_deleted_record_is_named_and_repair_keeps_what_the_other_records_describe(path: Path) -> None:
    record(path, 2).unlink()
    with pytest.raises(DamagedMemoryError) as error:
        SupportMemory.open(path, create=False)
    one_line_naming(error, "log/c000000000002.json")
    memory = SupportMemory.open(path, create=False, load=False)
    problems = [str(d) for d in memory.diagnose()]
    assert any("c000000000002.json: missing" in p for p in problems)
    assert any("no readable record names" in p for p in problems)  # s1's rows, whose record is gone
    result = memory.repair()
    assert sorted(result.kept) == ["s0", "s2"]
    assert f"segments/{segment_folder(path, 1).name}" in result.kept_objects
    repaired = SupportMemory.open(path, create=False)
    put(repaired, "s1", 1)  # the lost image can simply be added again
    repaired.collect_garbage(older_than_s=0)
    assert len(list((path / "segments").iterdir())) >= 4  # every segment of the old state is kept
    repaired.check()


def test_a_damaged_checkpoint_is_read_around_and_reported(path: Path) -> None:
    memory = SupportMemory.open(path, create=False)
    memory.remove_source("s0")
    memory.compact()  # a full record and a checkpoint
    checkpoint = next((path / "checkpoints").iterdir())
    checkpoint.write_text('{"format": "support_memory/2"}')
    put(memory, "s5", 5)
    reopened = SupportMemory.open(path, create=False)
    assert [s.source_id for s in reopened.sources()] == ["s1", "s2", "s5"]
    assert any(d.part == f"checkpoints/{checkpoint.name}" for d in reopened.diagnose())
    with pytest.raises(CorruptMemoryError):
        reopened.check()
    assert sorted(reopened.repair().kept) == ["s1", "s2", "s5"]
    SupportMemory.open(path, create=False).check()


def test_garbage_collection_keeps_everything_while_a_repair_report_is_unreadable(path: Path) -> None:
    shutil.rmtree(segment_folder(path, 1))
    memory = SupportMemory.open(path, create=False)
    report = path / memory.repair().report
    report.write_text("{damaged")
    before = sorted(p.name for p in (path / "segments").iterdir())
    SupportMemory.open(path, create=False).collect_garbage(older_than_s=0)
    assert sorted(p.name for p in (path / "segments").iterdir()) == before
