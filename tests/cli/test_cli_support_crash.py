"""`rns add-support` killed by SIGKILL mid bulk add: the memory holds whole commits only; a rerun finishes.

The memory-level crash test (`test_memory_crash.py`) covers every kind of write; this one covers the
command a user runs: a real process, the tiny model, a folder of pairs committed every few images.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from cli_runner import TINY
from PIL import Image

from support_memory import SupportMemory

IMAGES, COMMIT_EVERY = 32, 4


@pytest.fixture(scope="module")
def bulk_folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bulk")
    (root / "images").mkdir()
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    mask = np.zeros((360, 480), dtype=np.uint8)
    mask[:, 240:] = 1
    for i in range(IMAGES):
        pixels = rng.integers(0, 256, (360, 480, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "images" / f"im{i:02d}.png")
        Image.fromarray(mask, mode="L").save(root / "masks" / f"im{i:02d}.png")
    (root / "classes.txt").write_text("road\nbus\n")
    return root


def add_support(root: Path, memory: Path) -> subprocess.Popen:
    command = [sys.executable, "-c", "from rns.cli import main; main()", "add-support",
               "--images", str(root / "images"), "--masks", str(root / "masks"),
               "--classes-file", str(root / "classes.txt"), "--memory", str(memory),
               "--commit-every", str(COMMIT_EVERY), *TINY]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, f"add-support ended early: {process.stderr.read().decode()}"
        assert time.monotonic() < deadline, f"{path} did not appear within {timeout} s"
        time.sleep(0.01)


def assert_whole_commits(memory_path: Path) -> int:
    """The memory passes its check and holds whole images in whole batches; returns how many images."""
    if not (memory_path / "memory.json").exists():
        return 0  # killed before the memory was created: nothing to check, nothing half-made
    memory = SupportMemory.open(memory_path, create=False)
    memory.check()
    by_image: dict[str, list[str]] = {}
    for source in memory.sources():  # one entry per (image, class)
        assert len(source.class_names) == 1 and source.n_prototypes == 1
        by_image.setdefault(source.source_id.split("#")[0], []).extend(source.class_names)
    assert all(sorted(names) == ["bus", "road"] for names in by_image.values()), "an image was stored in part"
    assert len(by_image) % COMMIT_EVERY == 0, "a batch was committed in part"
    return len(by_image)


def test_sigkill_during_bulk_add_then_rerun(bulk_folder, tmp_path):
    rng = random.Random(1234)
    seen_partial = False
    for trial in range(5):
        memory = tmp_path / f"memory-{trial}.zarr"
        process = add_support(bulk_folder, memory)
        # The memory is created once every pair is checked and the model is built, right before the
        # first extraction: kill at a random moment of the extract-and-commit phase that follows.
        wait_for(memory / "memory.json", process)
        time.sleep(rng.uniform(0.0, 0.8))  # the commits of 32 images take about 0.8 s here
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
        stored = assert_whole_commits(memory)
        print(f"trial {trial}: {stored} of {IMAGES} images stored")
        seen_partial |= 0 < stored < IMAGES

    # A rerun on the last killed memory skips what is there and completes the rest.
    process = add_support(bulk_folder, memory)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 0, err.decode()
    assert assert_whole_commits(memory) == IMAGES
    # Which trials were cut mid-run depends on this machine's speed; the checks above hold either way.
    print(f"a kill landed between commits in at least one trial: {seen_partial}")
