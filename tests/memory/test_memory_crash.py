"""Crash safety and concurrency of support-memory writers, with real processes.

A child process runs a seeded script of puts (single and batched, new, replacing and unchanged), removals
and class removals; the test kills it with SIGKILL at random moments, reopens the memory and demands that
`check()` passes and that the memory holds exactly the state after some prefix of the script: every
commit all or nothing, every source's rows its old or its new version, never half.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import memory_writer_child as child  # noqa: E402

from support_memory import SupportMemory  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent.parent))
from s3_server import local_s3  # noqa: E402

CHILD = Path(__file__).parent / "memory_writer_child.py"
# Model state: source -> (version, classes still present, pruned by remove_class)
State = dict[str, tuple[str, tuple[str, ...], bool]]


def apply(state: State, op: tuple) -> State:
    """What one script operation does to the model state (mirrors SupportMemory's documented semantics)."""
    state = dict(state)
    if op[0] == "put":
        for source, version in op[1]:
            current = state.get(source)
            if current is not None and current[0] == version and not current[2]:
                continue  # unchanged
            _, names = child.source_rows(source, version)
            state[source] = (version, tuple(dict.fromkeys(names)), False)
    elif op[0] == "remove":
        state.pop(op[1], None)
    else:
        for source, (version, names, _) in list(state.items()):
            if op[1] in names:
                kept = tuple(n for n in names if n != op[1])
                if kept:
                    state[source] = (version, kept, True)
                else:
                    del state[source]
    return state


def observed_state(memory: SupportMemory) -> dict[str, tuple[str, tuple[str, ...]]]:
    """The memory's state, after checking each source's rows equal its version's (minus removed classes)."""
    class_of = {c.id: c.name for c in memory.classes()}
    state = {}
    for info in memory.sources():
        vectors, names = child.source_rows(info.source_id, info.content_key)
        keep = [i for i, n in enumerate(names) if n in info.class_names]
        stored, class_ids = memory.rows(memory.source_rows(info.source_id))
        np.testing.assert_array_equal(stored, vectors[keep].astype(np.float16).astype(np.float32))
        assert [class_of[int(c)] for c in class_ids] == [names[i] for i in keep]
        state[info.source_id] = (info.content_key, tuple(info.class_names))
    return state


def visible(state: State) -> dict[str, tuple[str, tuple[str, ...]]]:
    return {source: (version, names) for source, (version, names, _) in state.items()}


def start_child(*args: str) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, str(CHILD), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.strip() == "ready", process.stderr.read() if process.stderr else line
    return process


@pytest.fixture(scope="module")
def s3():
    pytest.importorskip("s3fs", reason="the s3 extra is not installed (pip install -e '.[s3,test]')")
    with local_s3() as server:
        yield server


@pytest.fixture(params=["folder", "s3"])
def where(request, tmp_path: Path) -> str:
    """A memory location: a local folder, or a prefix in a bucket of a real (local) S3 server."""
    if request.param == "folder":
        return str(tmp_path / "memory")
    server = request.getfixturevalue("s3")
    return f"s3://{server.new_bucket()}/team/memory"


def test_sigkill_at_random_moments_leaves_old_or_new_state(where: str) -> None:
    path = where
    rng = np.random.default_rng(1234)
    state: State = {}
    n_ops = 400
    kills_mid_script = 0
    trials = 10 if "://" not in where else 5
    for trial in range(trials):
        seed = 100 + trial
        process = start_child("ops", str(path), str(seed), str(n_ops))
        time.sleep(float(rng.uniform(0.0, 0.5)))
        process.send_signal(signal.SIGKILL)
        process.communicate()
        memory = SupportMemory.open(path, create=False)
        memory.check()
        seen = observed_state(memory)
        candidates = [state]
        for op in child.script_ops(seed, n_ops):
            candidates.append(apply(candidates[-1], op))
        matches = [i for i, candidate in enumerate(candidates) if visible(candidate) == seen]
        assert matches, f"trial {trial}: state after SIGKILL matches no prefix of the script"
        state = candidates[matches[-1]]
        kills_mid_script += matches[0] > 0 and matches[-1] < n_ops
    assert kills_mid_script >= trials // 2 - 1, "too few kills landed among the writes to test anything"

    # A writer after all those crashes finishes cleanly and ends in the script's final state.
    process = start_child("ops", str(path), "999", "40")
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    memory = SupportMemory.open(path, create=False)
    memory.check()
    final = state
    for op in child.script_ops(999, 40):
        final = apply(final, op)
    assert observed_state(memory) == visible(final)


def test_two_writers_at_once_lose_nothing(where: str) -> None:
    path = where
    SupportMemory.open(path)
    writers = [start_child("add", str(path), prefix, "15") for prefix in ("a", "b")]
    for process in writers:
        _, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
    memory = SupportMemory.open(path, create=False)
    memory.check()
    assert sorted(s.source_id for s in memory.sources()) == sorted(
        f"{prefix}-{i}" for prefix in ("a", "b") for i in range(15)
    )
    observed_state(memory)


def test_reader_opening_during_writes_sees_committed_states(where: str) -> None:
    path = where
    SupportMemory.open(path)
    process = start_child("ops", str(path), "7", "50")
    checked = 0
    while process.poll() is None:
        memory = SupportMemory.open(path, create=False)
        observed_state(memory)
        checked += 1
    assert process.returncode == 0, process.stderr.read() if process.stderr else ""
    assert checked >= 1
