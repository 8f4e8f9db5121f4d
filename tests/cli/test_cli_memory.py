"""`rns memory list|stats|remove|export` on a small memory filled through the Python API."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from support_fakes import DIM, FakeBackbone, index_mask, write_image, write_mask

from rns.cli import cli
from rns.cli.errors import run_with_user_errors
from rns.io.imageio import image_content_hash
from rns.teach.mask_conventions import LabelMapping
from rns.teach.support import add_supports
from support_memory import SupportMemory


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = run_with_user_errors(cli, argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def filled(tmp_path: Path) -> dict:
    """Two street images (road + bus) and one of a backpack with no usable name."""
    path = tmp_path / "memory.zarr"
    memory = SupportMemory.open(path)
    backbone = FakeBackbone()
    streets = [
        (write_image(tmp_path / f"s{i}.png", seed=i), write_mask(tmp_path / f"s{i}_m.png", index_mask()))
        for i in range(2)
    ]
    add_supports(backbone, memory, streets, LabelMapping.parse("0=road,1=bus"))
    pack = (
        write_image(tmp_path / "pack.png", seed=9),
        write_mask(tmp_path / "pack_m.png", index_mask() == 1),
    )
    add_supports(
        backbone, memory, [pack], LabelMapping.single_class("my-backpack"), class_texts={"my-backpack": None}
    )
    return {"path": path, "memory": memory, "streets": streets, "pack": pack}


def test_list_shows_counts_and_text(filled: dict, capsys) -> None:
    code, out, err = run(["memory", "list", "--memory", str(filled["path"])], capsys)
    assert code == 0, err
    lines = [line.split() for line in out.splitlines()]
    assert lines[0] == ["class", "prototypes", "images", "text"]
    assert lines[1:] == [
        ["road", "2", "2", "road"],
        ["bus", "2", "2", "bus"],
        ["my-backpack", "1", "1", "(no", "text)"],
    ]

    code, out, _ = run(["memory", "list", "--json", "--memory", str(filled["path"])], capsys)
    rows = {row["name"]: row for row in json.loads(out)}
    assert rows["my-backpack"] == {
        "name": "my-backpack",
        "text": None,
        "has_text": False,
        "prototypes": 1,
        "images": 1,
    }
    assert rows["road"]["text"] == "road"


def test_stats_text_and_json(filled: dict, capsys) -> None:
    code, out, _ = run(["memory", "stats", "--memory", str(filled["path"])], capsys)
    out_text = out
    assert code == 0 and "n_prototypes: 5" in out and f"dim: {DIM}" in out and '"model": "fake"' in out
    code, out, _ = run(["memory", "stats", "--json", "--memory", str(filled["path"])], capsys)
    stats = json.loads(out)
    # Three support images; one entry per (image, class): two streets of road+bus and one backpack.
    assert (stats["n_prototypes"], stats["n_classes"], stats["n_support_images"], stats["n_entries"]) == (
        5, 3, 3, 5)
    assert "n_sources" not in stats
    assert "n_support_images: 3" in out_text and "n_entries: 5" in out_text
    assert stats["bytes_on_disk"] > 0


def test_remove_by_image_file_by_id_and_by_class(filled: dict, capsys) -> None:
    memory_args = ["--memory", str(filled["path"])]
    street_image = filled["streets"][0][0]
    code, out, err = run(["memory", "remove", "--source", str(street_image), *memory_args], capsys)
    assert code == 0, err
    assert out.strip() == f"removed source {street_image} (2 prototypes: road, bus)"

    code, out, _ = run(["memory", "remove", "--class", "bus", *memory_args], capsys)
    assert code == 0 and out.strip() == "removed class bus (1 prototypes from 1 support image(s))"
    memory = SupportMemory.open(filled["path"], create=False)
    assert [c.name for c in memory.classes()] == ["road", "my-backpack"]

    pack_id = image_content_hash(filled["pack"][0])
    code, out, _ = run(["memory", "remove", "--source", pack_id, *memory_args], capsys)
    assert code == 0 and out.startswith(f"removed source {pack_id}")
    memory.refresh()
    assert [c.name for c in memory.classes()] == ["road"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "name what to remove"),
        (["--class", "car"], "has no class 'car'"),
        (["--source", "0123abc"], "has no source '0123abc'"),
    ],
)
def test_remove_errors_exit_2_and_change_nothing(args, message, filled: dict, capsys) -> None:
    before = filled["memory"].stats()
    code, _, err = run(["memory", "remove", *args, "--memory", str(filled["path"])], capsys)
    assert code == 2 and message in err and err.count("\n") == 1
    filled["memory"].refresh()
    assert filled["memory"].stats() == before


def test_missing_memory_is_a_one_line_error(tmp_path: Path, capsys) -> None:
    code, _, err = run(["memory", "list", "--memory", str(tmp_path / "nowhere.zarr")], capsys)
    assert code == 2 and "no support memory at" in err and err.count("\n") == 1
    assert not (tmp_path / "nowhere.zarr").exists()


def test_export_round_trips_the_rows(filled: dict, tmp_path: Path, capsys) -> None:
    target = tmp_path / "out" / "supports.npz"
    code, out, err = run(["memory", "export", str(target), "--memory", str(filled["path"])], capsys)
    assert code == 0, err
    assert out.strip() == f"exported 5 prototypes of 3 classes to {target}"
    data = np.load(target)  # no allow_pickle: the file must not need it
    assert data["vectors"].shape == (5, DIM) and data["vectors"].dtype == np.float32
    assert list(data["class_names"]) == ["road", "bus", "my-backpack"]
    assert list(data["class_has_text"]) == [True, True, False]
    names = [str(data["class_names"][label]) for label in data["labels"]]
    street_ids = [image_content_hash(image) for image, _ in filled["streets"]]
    pack_id = image_content_hash(filled["pack"][0])
    images = [source.split("#")[0] for source in data["sources"].tolist()]
    assert sorted(zip(images, names, strict=True)) == sorted(
        [
            (street_ids[0], "road"),
            (street_ids[0], "bus"),
            (street_ids[1], "road"),
            (street_ids[1], "bus"),
            (pack_id, "my-backpack"),
        ]
    )
    # every exported row is the stored vector of its class: its class prototype is their mean
    memory: SupportMemory = filled["memory"]
    ids, prototypes = memory.class_prototypes()
    for class_id, prototype in zip(ids, prototypes, strict=True):
        name = next(c.name for c in memory.classes() if c.id == class_id)
        mean = data["vectors"][np.array(names) == name].mean(axis=0)
        np.testing.assert_allclose(mean / np.linalg.norm(mean), prototype, atol=1e-3)
    meta = json.loads(str(data["meta_json"]))
    assert meta["fingerprint"]["model"] == "fake" and len(meta["sources"]) == 5  # per (image, class)


def test_reindex_trains_and_saves_the_index(filled: dict, tmp_path: Path, capsys) -> None:
    path = filled["path"]
    code, out, err = run(["memory", "reindex", "--memory", str(path)], capsys)
    assert code == 0 and "index: IVF" in out, err
    stats = SupportMemory.open(path, create=False).stats()["index"]
    assert stats["valid"] and stats["n_indexed"] == stats["n_trained_for"] > 0
    code, _, err = run(["memory", "reindex", "--memory", str(tmp_path / "nowhere")], capsys)
    assert code == 2 and "no support memory" in err
