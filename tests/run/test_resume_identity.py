"""Issue 12 item 1: a folder run's resume key identifies the memory's content and every output setting.

On 0.1.0 the key held the memory's commit number only, so a rerun with another memory at the same commit
number kept the old outputs. These tests run `rns segment` as a user does (the CLI, tiny random model).
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
from cli_runner import TINY, rns
from PIL import Image
from synthetic_images import two_texture_image


def counts(out_dir: Path) -> dict[str, int]:
    return json.loads((out_dir / "summary.json").read_text())["counts"]


@pytest.fixture()
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for seed in range(2):
        Image.fromarray(two_texture_image(10 + seed)).save(folder / f"p{seed}.png")
    return folder


def add(memory: Path, image_seed: int, mask: np.ndarray, tmp_path: Path, capsys, *extra: str) -> None:
    image, mask_path = tmp_path / f"s{image_seed}.png", tmp_path / f"s{image_seed}_{mask.sum()}.png"
    Image.fromarray(two_texture_image(image_seed)).save(image)
    Image.fromarray(mask).save(mask_path)
    code, _, err = rns(["add-support", str(image), str(mask_path), "--class", "car", "--memory", str(memory),
                        *extra, *TINY], capsys)  # fmt: skip
    assert code == 0, err


def left(width: int) -> np.ndarray:
    mask = np.zeros((120, 160), dtype=np.uint8)
    mask[:, :width] = 1
    return mask


def test_another_memory_at_the_same_commit_number_redoes_the_outputs(photos, tmp_path, capsys):
    memory_a, memory_b = tmp_path / "a.zarr", tmp_path / "b.zarr"
    add(memory_a, 1, left(80), tmp_path, capsys)
    add(memory_b, 2, left(40), tmp_path, capsys)
    from support_memory import SupportMemory

    a, b = SupportMemory.open(memory_a, create=False), SupportMemory.open(memory_b, create=False)
    assert a.stats()["commit"] == b.stats()["commit"]  # the situation of the issue
    out = tmp_path / "out"
    base = ["segment", str(photos), "--classes", "car", "--out", str(out), "-q", *TINY]
    code, _, err = rns([*base, "--memory", str(memory_a)], capsys)
    assert code == 0, err
    assert counts(out)["done"] == 2
    code, _, err = rns([*base, "--memory", str(memory_a)], capsys)
    assert code == 0 and counts(out)["skipped"] == 2  # same memory, same settings: up to date
    code, _, err = rns([*base, "--memory", str(memory_b)], capsys)
    assert code == 0, err
    assert counts(out) == {"total": 2, "done": 2, "skipped": 0, "failed": 0}


def test_a_changed_prompt_or_prototype_in_the_same_memory_redoes_the_outputs(photos, tmp_path, capsys):
    memory = tmp_path / "m.zarr"
    add(memory, 1, left(80), tmp_path, capsys)
    out = tmp_path / "out"
    base = ["segment", str(photos), "--classes", "car", "--out", str(out), "-q", "--memory", str(memory),
            *TINY]
    assert rns(base, capsys)[0] == 0 and counts(out)["done"] == 2
    add(memory, 1, left(80), tmp_path, capsys, "--text", "automobile")  # same rows, another prompt
    assert rns(base, capsys)[0] == 0 and counts(out)["done"] == 2
    add(memory, 1, left(60), tmp_path, capsys)  # same image, another mask: another prototype
    assert rns(base, capsys)[0] == 0 and counts(out)["done"] == 2
    assert rns(base, capsys)[0] == 0 and counts(out)["skipped"] == 2


@pytest.mark.parametrize(
    "changed",
    [["--k", "2"], ["--seed", "1"], ["--solver", "fast"], ["--steps", "21"],
     ["--background-threshold", "0.5"], ["--zero-shot"], ["--classes", "car,tree"], ["--variant", "naclip"],
     ["--no-background"], ["--weighting", "per_term"]],
)
def test_every_option_that_changes_pixels_redoes_the_outputs(changed, photos, tmp_path, capsys):
    memory = tmp_path / "m.zarr"
    add(memory, 1, left(80), tmp_path, capsys)
    out = tmp_path / "out"
    base = ["segment", str(photos), "--classes", "car", "--out", str(out), "-q", "--memory", str(memory),
            "--steps", "20", *TINY]
    assert rns(base, capsys)[0] == 0 and counts(out)["done"] == 2
    if "--variant" in changed:  # the memory holds features of the default variant: compare zero-shot runs
        base.append("--zero-shot")
        assert rns(base, capsys)[0] == 0 and counts(out)["done"] == 2
    code, _, err = rns([*base, *changed], capsys)
    assert code == 0, err
    assert counts(out)["done"] == 2, f"{changed} kept outputs made under other settings"


def test_the_settings_dict_covers_every_field_of_the_options(tiny_backbone):
    """Settings added to SegmentOptions or AdaptConfig later join the key without anyone listing them."""
    from rns.adapt import AdaptConfig
    from rns.segment.pipeline import Segmenter, SegmentOptions

    segmenter = Segmenter(tiny_backbone, "car", options=SegmentOptions(zero_shot=True))
    settings = segmenter.settings()
    assert set(settings["options"]) == {f.name for f in fields(SegmentOptions)}
    assert set(settings["options"]["adapt"]) == {f.name for f in fields(AdaptConfig)}
    other = Segmenter(tiny_backbone, "car", options=SegmentOptions(zero_shot=True, adapt=AdaptConfig(seed=7)))
    assert other.settings_key() != segmenter.settings_key()


def test_content_identity_differs_across_memories_and_survives_compaction(tmp_path):
    from support_memory import SupportMemory

    rng = np.random.default_rng(0)
    rows = rng.normal(size=(3, 8)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    fingerprint = {"model": "fake"}
    a, b = SupportMemory.open(tmp_path / "a"), SupportMemory.open(tmp_path / "b")
    a.put_source("s", rows[:2], ["car", "road"], fingerprint=fingerprint, content_key="k")
    b.put_source("s", rows[1:], ["car", "road"], fingerprint=fingerprint, content_key="k")
    assert a.stats()["commit"] == b.stats()["commit"] and a.content_id() != b.content_id()
    copy = SupportMemory.open(tmp_path / "c")
    copy.put_source("s", rows[:2], ["car", "road"], fingerprint=fingerprint, content_key="k")
    assert copy.content_id() == a.content_id()  # same content, same identity, whatever the path
    before = a.content_id()
    a.put_source("t", rows[2:], ["car"], fingerprint=fingerprint, content_key="k")
    a.remove_source("t")
    a.compact()
    assert a.content_id() == before  # moved rows, same content
    a.remove_class("road")
    assert a.content_id() != before
