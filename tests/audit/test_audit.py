"""`rns memory audit` on the tiny random model: a swapped-class support is found, --apply records scores
and demotes it, and photos that are gone or changed are skipped and counted.

Three two-texture photos (left: red blobs, right: stripes); the middle one's mask is swapped. With the
rest of the memory, each clean photo retrieves one clean and one swapped example, so the swapped one
costs it most of its IoU: the leave-one-out sees that on both photos that retrieve it. (The tiny model's
weights are random: this tests the audit's machinery, not segmentation quality.)
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from cli_runner import TINY
from PIL import Image
from synthetic_images import left_half_mask, save_pair

from rns.audit.run import audit_memory
from rns.audit.truth import SKIP_CHANGED, SKIP_GONE
from rns.cli import cli
from rns.cli.errors import run_with_user_errors
from rns.teach.mask_conventions import LabelMapping
from rns.teach.support import add_supports
from support_memory import SupportMemory

MAPPING = "0=background,1=red"


def _build(folder: Path, backbone) -> Path:
    pairs = [save_pair(folder / "photos", f"s{i}", i) for i in range(3)]
    Image.fromarray(left_half_mask(0, 1)).save(pairs[1][1])  # s1: red and background swapped
    add_supports(backbone, SupportMemory.open(folder / "memory.zarr"), pairs, LabelMapping.parse(MAPPING))
    return folder / "memory.zarr"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory, tiny_backbone) -> Path:
    """The three-photo memory and its photos, built once; tests that write work on a copy."""
    return _build(tmp_path_factory.mktemp("audit"), tiny_backbone).parent


@pytest.fixture(scope="module")
def report(pristine, tiny_backbone, one_torch_thread):
    return audit_memory(SupportMemory.open(pristine / "memory.zarr", create=False), tiny_backbone)


def _copy(pristine: Path, tmp_path: Path) -> Path:
    """A copy of the memory whose recorded photo paths still point at the pristine photos."""
    shutil.copytree(pristine / "memory.zarr", tmp_path / "memory.zarr")
    return tmp_path / "memory.zarr"


def test_the_swapped_support_is_flagged_and_the_clean_ones_are_not(report):
    flagged = {(Path(e.image).name, e.class_name) for e in report.hurting()}
    assert flagged == {("s1.png", "red"), ("s1.png", "background")}
    assert [Path(p.image).name for p in report.hurting_photos()] == ["s1.png"]
    assert all(e.score > 0 for e in report.entries if Path(e.image).name != "s1.png")
    worst = report.hurting()[0]
    assert worst.retrieved_by == 2 and worst.score < -10
    assert worst.reason().startswith(f"class `{worst.class_name}` from s1.png lowers the mean IoU of the 2 "
                                     "photos that retrieve it by ")  # fmt: skip
    assert report.photos_audited == 3 and not report.skipped
    assert report.head_fits == 3 * (1 + 4 + 2)  # per photo: baseline, 4 entries, 2 photos' entries together


def test_cli_audit_json_apply_then_list_shows_scores_and_exclusions(pristine, tmp_path, capsys):
    memory = _copy(pristine, tmp_path)
    sheet = tmp_path / "worst.png"
    code = run_with_user_errors(cli, ["memory", "audit", "--memory", str(memory), *TINY, "--json",
                                      "--sheet", str(sheet), "--apply"])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    audit = json.loads(out)
    assert {Path(e["image"]).name for e in audit["hurting"]} == {"s1.png"}
    assert "applied: scores recorded for 6 entries, 2 excluded from retrieval" in err
    with Image.open(sheet) as image:
        assert image.format == "PNG" and image.width == 2 * 320

    assert run_with_user_errors(cli, ["memory", "list", "--sources", "--memory", str(memory)]) == 0
    lines = capsys.readouterr().out.splitlines()
    swapped = [line for line in lines if "s1.png" in line]
    assert len(swapped) == 2 and all("on 2 photos, excluded" in line for line in swapped)
    assert all("audit +" in line and "excluded" not in line for line in lines if "s1.png" not in line)
    assert run_with_user_errors(cli, ["memory", "list", "--sources", "--json", "--memory", str(memory)]) == 0
    rows = json.loads(capsys.readouterr().out)
    weights = {(Path(row["image"]).name, row["classes"][0]): row["audit"]["retrieval_weight"] for row in rows}
    assert weights[("s1.png", "red")] == 0.0 and weights[("s0.png", "red")] == 1.0


def test_gone_and_changed_photos_are_skipped_and_counted(tmp_path, tiny_backbone, one_torch_thread):
    memory_path = _build(tmp_path, tiny_backbone)
    photos = tmp_path / "photos"
    (photos / "s0.png").unlink()
    Image.fromarray(left_half_mask(1, 0)).save(photos / "s1_mask.png")  # edited since it was added
    report = audit_memory(SupportMemory.open(memory_path, create=False), tiny_backbone)
    assert report.skipped[SKIP_GONE] == 2 and report.skipped_photos == 1
    assert report.skipped[SKIP_CHANGED] == 2
    assert report.photos_audited == 1
    assert "skipped 4 entries (1 photos gone)" in report.table()


def test_apply_refuses_a_bad_weight_and_audit_needs_examples(tmp_path, capsys):
    code = run_with_user_errors(cli, ["memory", "audit", "--memory", str(tmp_path / "none"), *TINY])
    assert code == 2 and "no support memory" in capsys.readouterr().err
    SupportMemory.open(tmp_path / "empty")
    code = run_with_user_errors(cli, ["memory", "audit", "--memory", str(tmp_path / "empty"), *TINY])
    assert code == 2 and "holds no examples yet" in capsys.readouterr().err
    code = run_with_user_errors(cli, ["memory", "audit", "--memory", str(tmp_path / "empty"), *TINY,
                                      "--apply", "--weight", "1"])  # fmt: skip
    assert code == 2 and "--weight" in capsys.readouterr().err


def test_mask_convention_round_trips_through_meta():
    for mapping in (LabelMapping.parse("0=sky,1=road,2=Road"), LabelMapping.single_class("my mug")):
        assert LabelMapping.from_meta(mapping.to_meta()) == mapping
    assert np.array_equal(LabelMapping.from_meta(LabelMapping.parse(MAPPING).to_meta())
                          .label_map(left_half_mask(), "m.png"), LabelMapping.parse(MAPPING)
                          .label_map(left_half_mask(), "m.png"))  # fmt: skip
