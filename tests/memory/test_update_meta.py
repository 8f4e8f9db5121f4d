"""`SupportMemory.update_meta`: per-source meta merged in one commit, rows and identity untouched."""

from __future__ import annotations

import numpy as np
import pytest

from support_memory import SupportMemory, UnknownEntryError

FINGERPRINT = {"model": "test", "dim": 4}


def test_update_meta_merges_deletes_and_keeps_the_content(tmp_path):
    memory = SupportMemory.open(tmp_path / "m")
    vector = np.eye(4, dtype=np.float32)[:1]
    memory.put_source("a", vector, ["car"], fingerprint=FINGERPRINT)
    memory.put_source("b", vector, ["bus"], fingerprint=FINGERPRINT)
    identity, commit = memory.content_id(), memory.commit
    memory.update_meta({"a": {"score": "1.5", "weight": "0"}, "b": {"score": "-2"}})
    assert memory.commit == commit + 1 and memory.content_id() == identity
    memory.update_meta({"a": {"weight": None}})
    reopened = {info.source_id: dict(info.meta) for info in SupportMemory.open(tmp_path / "m").sources()}
    assert reopened == {"a": {"score": "1.5"}, "b": {"score": "-2"}}
    memory.update_meta({"a": {"score": "1.5"}})  # no change: no commit
    assert memory.commit == commit + 2
    with pytest.raises(UnknownEntryError, match="no source 'c'"):
        memory.update_meta({"a": {"score": "0"}, "c": {"score": "1"}})
    assert SupportMemory.open(tmp_path / "m").sources()[0].meta["score"] == "1.5"  # nothing half-written
