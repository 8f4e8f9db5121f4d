"""The memory at an s3:// URL, against a real S3 API (moto's server on 127.0.0.1).

Crash safety, concurrent writers and readers during writes run in test_memory_crash.py for both a folder
and S3; this file checks that both hold the same content, the conditional create the commit relies on,
pinned commits, and read-only credentials.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent.parent))
from s3_server import credentials, local_s3  # noqa: E402

from support_memory import ReadOnlyMemoryError, SupportMemory, UnknownEntryError  # noqa: E402
from support_memory.errors import DamagedMemoryError  # noqa: E402
from support_memory.storage import open_storage  # noqa: E402

pytest.importorskip("s3fs", reason="the s3 extra is not installed (pip install -e '.[s3,test]')")
FP = {"model": "synthetic", "dim": 16}


@pytest.fixture(scope="module")
def s3():
    with local_s3() as server:
        yield server


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    vectors = rng.standard_normal((n, 16)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def fill(memory: SupportMemory) -> None:
    rng = np.random.default_rng(3)
    for i in range(20):
        n = 1 + i % 3
        memory.put_source(f"img{i}", unit(rng, n), ["car", "bus", "road"][:n], fingerprint=FP,
                          content_key=f"k{i}")  # fmt: skip
    memory.remove_source("img4")
    memory.remove_class("bus")


def test_an_s3_memory_holds_what_a_folder_memory_holds(s3, tmp_path: Path) -> None:
    url = f"s3://{s3.new_bucket()}/shared/memory"
    remote, local = SupportMemory.open(url), SupportMemory.open(tmp_path / "memory")
    fill(remote)
    fill(local)
    assert remote.content_id() == local.content_id()
    assert [c.name for c in remote.classes()] == [c.name for c in local.classes()] == ["car", "road"]
    queries = unit(np.random.default_rng(9), 5)
    a, b = remote.search(queries, 4), local.search(queries, 4)
    np.testing.assert_array_equal(a.rows, b.rows)
    np.testing.assert_array_equal(a.scores, b.scores)
    remote.check()
    reopened = SupportMemory.open(url, create=False)
    assert reopened.content_id() == local.content_id() and reopened.commit == remote.commit
    remote.compact()
    remote.check()
    assert SupportMemory.open(url, create=False).content_id() == local.content_id()


def test_the_commit_point_is_a_real_conditional_put(s3) -> None:
    storage = open_storage(f"s3://{s3.new_bucket()}/m")
    assert storage.create("log/c000000000001.json", b"first") is True
    assert storage.create("log/c000000000001.json", b"second") is False  # 412 from the server
    assert storage.read("log/c000000000001.json") == b"first"


def test_a_pinned_commit_reads_the_same_rows_after_later_writes(s3) -> None:
    url = f"s3://{s3.new_bucket()}/m"
    memory = SupportMemory.open(url)
    rng = np.random.default_rng(4)
    memory.put_source("a", unit(rng, 2), ["car", "road"], fingerprint=FP)
    pinned_commit, pinned_id = memory.commit, memory.content_id()
    memory.put_source("b", unit(rng, 2), ["car", "road"], fingerprint=FP)
    pinned = SupportMemory.open(url, commit=pinned_commit)
    assert pinned.content_id() == pinned_id and [s.source_id for s in pinned.sources()] == ["a"]
    pinned.refresh()  # a pinned reader stays on its commit
    assert pinned.commit == pinned_commit
    with pytest.raises(UnknownEntryError, match="has no commit 99"):
        SupportMemory.open(url, commit=99)


def test_read_only_credentials_can_read_and_a_write_is_one_line() -> None:
    with local_s3(auth_after=7) as server:  # bucket, then 2 users x (user, policy, key): then IAM applies
        bucket = server.new_bucket()
        writer = server.user("writer", ["s3:*"])
        reader = server.user("reader", ["s3:GetObject", "s3:ListBucket"])
        url = f"s3://{bucket}/team/memory"
        with credentials(writer):
            memory = SupportMemory.open(url)
            memory.put_source("a", unit(np.random.default_rng(1), 2), ["car", "road"], fingerprint=FP)
            expected = memory.content_id()
        with credentials(reader):
            shared = SupportMemory.open(url, create=False)
            assert shared.content_id() == expected
            assert shared.search(unit(np.random.default_rng(2), 1), 2).rows.shape == (1, 2)
            with pytest.raises(ReadOnlyMemoryError, match="permission denied"):
                shared.check_writable()
            with pytest.raises(ReadOnlyMemoryError, match="cannot be written"):
                shared.put_source("b", unit(np.random.default_rng(3), 1), ["car"], fingerprint=FP)
        with credentials(writer):
            assert SupportMemory.open(url, create=False).content_id() == expected  # nothing half-written


def test_a_damaged_object_on_s3_is_named_and_repaired_through_the_same_storage(s3) -> None:
    url = f"s3://{s3.new_bucket()}/m"
    memory = SupportMemory.open(url)
    rng = np.random.default_rng(6)
    for name in ("a", "b", "c"):
        memory.put_source(name, unit(rng, 2), ["car", "road"], fingerprint=FP)
    storage = open_storage(url)
    damaged = storage.list("segments")[1]  # names sort by creation: source b's segment
    storage.write(f"segments/{damaged}/vectors/c/0/0", b"")
    record = storage.read("log/c000000000003.json")
    storage.write("log/c000000000003.json", record.replace(b'"count":', b'"count":-'))
    with pytest.raises(DamagedMemoryError, match="log/c000000000003.json"):
        SupportMemory.open(url, create=False)
    found = SupportMemory.open(url, create=False, load=False).diagnose()
    assert {d.part for d in found} == {"log/c000000000003.json", f"segments/{damaged}/vectors/c/0/0"}
    result = SupportMemory.open(url, create=False, load=False).repair()
    assert sorted(result.kept) == ["a", "c"] and [d.source_id for d in result.dropped] == ["b"]
    repaired = SupportMemory.open(url, create=False)
    repaired.put_source("d", unit(rng, 2), ["car", "road"], fingerprint=FP)
    repaired.collect_garbage(older_than_s=0)
    assert storage.exists(f"segments/{damaged}/vectors/c/0/0")  # kept for a person to look at
    repaired.check()
