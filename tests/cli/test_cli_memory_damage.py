"""The commands on a damaged memory (tiny random model): one line naming the part and the fix, never a
traceback; `rns memory check` exits 1 naming it; `rns memory repair` keeps the intact photos, lists the
dropped one, and segment, export and add-support work again (issue 22, items 11-13)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from cli_runner import TINY, rns
from PIL import Image
from synthetic_images import save_pair, two_texture_image

from rns.teach.mask_conventions import LabelMapping
from rns.teach.support import add_supports
from support_memory import SupportMemory

LABELS = "0=background,1=widget"


@pytest.fixture
def memory(tiny_backbone, tmp_path: Path) -> dict:
    """Three photos, each added in its own commit (so each has its own segment)."""
    path = tmp_path / "memory"
    store = SupportMemory.open(path)
    pairs = [save_pair(tmp_path / "supports", f"p{i}", i) for i in range(3)]
    for pair in pairs:
        add_supports(tiny_backbone, store, [pair], LabelMapping.parse(LABELS))
    query = tmp_path / "query.png"
    Image.fromarray(two_texture_image(7)).save(query)
    segments = sorted((path / "segments").iterdir())
    return {"path": path, "pairs": pairs, "query": query, "damaged": segments[1], "tmp": tmp_path}


def one_line(err: str, *needles: str) -> None:
    """One error line (add-support's per-image progress lines, printed when stderr is no terminal, aside)."""
    lines = [line for line in err.strip().splitlines() if not re.fullmatch(r"extracting \d+/\d+", line)]
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err


def test_a_truncated_chunk_is_one_line_until_repaired(memory: dict, capsys) -> None:
    path, tmp = str(memory["path"]), memory["tmp"]
    chunk = memory["damaged"] / "vectors" / "c" / "0" / "0"
    chunk.write_bytes(chunk.read_bytes()[:7])
    segment = ["segment", str(memory["query"]), "--classes", "widget", "--memory", path, "--out",
               str(tmp / "out"), *TINY]  # fmt: skip
    code, _, err = rns(segment, capsys)
    assert code == 2
    one_line(err, memory["damaged"].name, "vectors/c/0/0", "rns memory check", "rns memory repair")
    code, _, err = rns(["memory", "export", str(tmp / "x.npz"), "--memory", path], capsys)
    assert code == 2 and not (tmp / "x.npz").exists()
    one_line(err, memory["damaged"].name, "rns memory repair")
    # Re-adding the damaged photo with a new mask must take its old rows out: refused in one line, and
    # nothing is committed.
    commit = SupportMemory.open(path, create=False).commit
    image, mask = memory["pairs"][1]
    new_mask = tmp / "new_mask.png"
    Image.fromarray(1 - np.asarray(Image.open(mask))).save(new_mask)
    code, _, err = rns(["add-support", str(image), str(new_mask), "--labels", LABELS, "--memory", path,
                        *TINY], capsys)  # fmt: skip
    assert code == 2
    one_line(err, memory["damaged"].name, "rns memory repair")
    assert SupportMemory.open(path, create=False).commit == commit

    code, out, _ = rns(["memory", "check", "--memory", path], capsys)
    assert code == 1 and f"{memory['damaged'].name}/vectors/c/0/0" in out and "rns memory repair" in out
    code, out, _ = rns(["memory", "check", "--json", "--memory", path], capsys)
    assert code == 1 and json.loads(out)["clean"] is False

    code, out, err = rns(["memory", "repair", "--memory", path], capsys)
    assert code == 0, err
    dropped = [line for line in out.splitlines() if line.startswith("dropped:")]
    assert len(dropped) == 2 and all(str(image) in line for line in dropped)  # its background and widget
    assert chunk.exists()  # damaged files are left where they are
    code, out, _ = rns(["memory", "check", "--memory", path], capsys)
    assert code == 0 and "nothing is damaged" in out

    code, _, err = rns(segment, capsys)
    assert code == 0, err
    code, _, err = rns(["add-support", str(image), str(mask), "--labels", LABELS, "--memory", path, *TINY],
                       capsys)  # fmt: skip
    assert code == 0, err
    code, out, _ = rns(["memory", "list", "--sources", "--json", "--memory", path], capsys)
    assert {row["image"] for row in json.loads(out)} == {str(p[0]) for p in memory["pairs"]}
    code, _, err = rns(["memory", "export", str(tmp / "x.npz"), "--memory", path], capsys)
    assert code == 0, err


def test_an_edited_record_stops_list_and_stats_in_one_line(memory: dict, capsys) -> None:
    path = memory["path"]
    record = path / "log" / "c000000000002.json"
    payload = json.loads(record.read_text())
    payload["classes"][0]["count"] = -5
    record.write_text(json.dumps(payload))
    for command in (["memory", "list"], ["memory", "stats"], ["memory", "list", "--sources"]):
        code, _, err = rns([*command, "--memory", str(path)], capsys)
        assert code == 2
        one_line(err, "log/c000000000002.json", "-5 prototypes", "rns memory check", "rns memory repair")
    code, out, _ = rns(["memory", "check", "--memory", str(path)], capsys)
    assert code == 1 and "log/c000000000002.json" in out
    code, out, err = rns(["memory", "repair", "--memory", str(path)], capsys)
    assert code == 0 and "dropped" not in out.replace("dropped 0", ""), out + err
    code, out, _ = rns(["memory", "stats", "--json", "--memory", str(path)], capsys)
    stats = json.loads(out)
    assert code == 0 and stats["n_dead_rows"] == 0 and stats["n_entries"] == 6


def test_a_deleted_segment_lets_add_support_commit_a_new_photo(memory: dict, capsys) -> None:
    """Behaviour chosen: a write that needs nothing from the damaged part commits (it cannot make the
    damage worse, and repair keeps it); one that must read the damaged part is refused."""
    import shutil

    path = str(memory["path"])
    shutil.rmtree(memory["damaged"])
    image, mask = save_pair(memory["tmp"] / "supports", "new", 11)
    code, _, err = rns(["add-support", str(image), str(mask), "--labels", LABELS, "--memory", path, *TINY],
                       capsys)  # fmt: skip
    assert code == 0, err
    old_image = memory["pairs"][1][0]
    code, _, err = rns(["memory", "remove", "--source", str(old_image), "--memory", path], capsys)
    assert code == 2
    one_line(err, memory["damaged"].name, "missing", "rns memory repair")
    code, out, _ = rns(["memory", "repair", "--memory", path], capsys)
    assert code == 0 and out.count("dropped:") == 2 and str(old_image) in out
    code, out, _ = rns(["memory", "list", "--sources", "--json", "--memory", path], capsys)
    kept = {str(memory["pairs"][0][0]), str(memory["pairs"][2][0]), str(image)}
    assert {row["image"] for row in json.loads(out)} == kept
