"""Issue 12 items 2 and 5, on real file systems: a read-only memory, and a full disk.

2: a memory on a read-only file system can be listed, inspected, searched and segmented with; adding to
   it gives one line and exit 2 (0.1.0: traceback, exit 1, even for `rns memory list`).
5: add-support or segment on a full disk give one line naming the path and "no space left", a non-zero
   exit, leave the memory as it was and readable and no half-written file; a rerun after freeing space
   completes (0.1.0: a 91-line zarr traceback; a crash writing summary.json).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from cli_runner import TINY, rns
from mounts import fill, leftovers, read_only_view, small_tmpfs
from PIL import Image
from synthetic_images import two_texture_image

PROGRESS = re.compile(r"extracting \d+/\d+")


def one_line(err: str) -> str:
    """The one error line; add-support's per-image progress lines (stderr not a terminal) come before it."""
    lines = [line for line in err.splitlines() if line.strip() and not PROGRESS.fullmatch(line)]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture()
def supports(tmp_path: Path) -> list[tuple[Path, Path]]:
    pairs = []
    for seed in range(3):
        image, mask = tmp_path / "sup" / f"s{seed}.png", tmp_path / "sup" / f"s{seed}_mask.png"
        image.parent.mkdir(exist_ok=True)
        Image.fromarray(two_texture_image(seed)).save(image)
        labels = np.zeros((120, 160), np.uint8)
        labels[:, 80:] = 1
        Image.fromarray(labels).save(mask)
        pairs.append((image, mask))
    return pairs


def add(memory: Path, pairs, capsys) -> tuple[int, str, str]:
    files = [str(p) for pair in pairs for p in pair]
    return rns(["add-support", *files, "--labels", "0=road,1=bus", "--memory", str(memory), *TINY], capsys)


def listing(memory: Path, capsys) -> str:
    code, out, err = rns(["memory", "list", "--json", "--memory", str(memory)], capsys)
    assert code == 0, err
    return out


def test_a_read_only_memory_can_be_read_and_refuses_writes_in_one_line(supports, tmp_path, capsys):
    memory = tmp_path / "memory.zarr"
    assert add(memory, supports[:2], capsys)[0] == 0
    expected = listing(memory, capsys)
    with read_only_view(memory, tmp_path / "ro.zarr") as shared:
        assert listing(shared, capsys) == expected
        code, out, err = rns(["memory", "stats", "--memory", str(shared)], capsys)
        assert code == 0 and "n_prototypes: 4" in out, err
        code, out, err = rns(["memory", "list", "--sources", "--memory", str(shared)], capsys)
        assert code == 0 and "s0.png" in out, err
        code, _, err = rns(["segment", str(supports[2][0]), "--classes", "road,bus", "--memory", str(shared),
                            "--out", str(tmp_path / "out"), *TINY], capsys)  # fmt: skip
        assert code == 0, err
        from support_memory import SupportMemory

        with SupportMemory.open(shared, create=False) as reader:
            query = np.eye(1, reader.stats()["dim"], dtype=np.float32)
            assert reader.search(query, k=2).rows.shape == (1, 2)

        code, _, err = add(shared, supports[2:], capsys)
        assert code == 2
        line = one_line(err)
        assert str(shared) in line and "read-only file system" in line
        code, _, err = rns(["memory", "remove", "--class", "bus", "--memory", str(shared)], capsys)
        assert code == 2 and "read-only file system" in one_line(err)
    assert listing(memory, capsys) == expected


def test_add_support_on_a_full_disk_is_one_line_and_keeps_the_memory(supports, tmp_path, capsys):
    with small_tmpfs(tmp_path / "disk", 4096) as disk:
        memory = disk / "memory.zarr"
        assert add(memory, supports[:1], capsys)[0] == 0
        before = listing(memory, capsys)
        filler = fill(disk, leave_bytes=8 * 1024)
        code, _, err = add(memory, supports[1:], capsys)
        assert code != 0
        line = one_line(err)
        assert "no space left" in line and str(memory) in line
        assert listing(memory, capsys) == before  # as it was, and readable
        from support_memory import SupportMemory

        SupportMemory.open(memory, create=False).check()
        assert leftovers(disk) == []
        filler.unlink()
        code, out, err = add(memory, supports[1:], capsys)
        assert code == 0 and "2 added" in out, err
        assert json.loads(listing(memory, capsys)) != json.loads(before)


def test_segment_on_a_full_disk_is_one_line_and_a_rerun_completes(supports, tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    for image, _ in supports:
        shutil.copy(image, photos / image.name)
    with small_tmpfs(tmp_path / "disk", 1024) as disk:
        out = disk / "out"
        out.mkdir()
        filler = fill(disk, leave_bytes=16 * 1024)
        argv = ["segment", str(photos), "--classes", "road,bus", "--zero-shot", "--out", str(out), "-q",
                *TINY]
        code, _, err = rns(argv, capsys)
        assert code != 0
        line = one_line(err)
        assert "no space left" in line and str(out) in line
        assert leftovers(disk) == []
        for path in out.glob("*.png"):  # whatever was written is whole
            Image.open(path).load()
        filler.unlink()
        code, _, err = rns(argv, capsys)
        assert code == 0, err
        summary = json.loads((out / "summary.json").read_text())
        counts = summary["counts"]
        assert counts["failed"] == 0 and counts["done"] + counts["skipped"] == 3
        assert summary["exit_code"] == 0
