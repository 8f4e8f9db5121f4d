"""`rns add-support` from the command line: argument checks, bad input (exit 2, one line, memory
untouched) and one end-to-end run through the tiny random model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cli_runner import TINY, rns
from support_fakes import index_mask, write_image, write_mask

from support_memory import SupportMemory


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    return {
        "image": write_image(tmp_path / "street.png", seed=1),
        "mask": write_mask(tmp_path / "street_mask.png", index_mask()),
        "binary": write_mask(tmp_path / "bus_mask.png", (index_mask() == 1) * 255),
        "image2": write_image(tmp_path / "bus.png", seed=2),
        "three": write_mask(tmp_path / "three_mask.png", index_mask() * 2),  # values 0, 2, 255
        "memory": tmp_path / "memory.zarr",
    }


def test_end_to_end_through_the_tiny_model(files: dict[str, Path], tmp_path: Path, capsys) -> None:
    memory = ["--memory", str(files["memory"])]
    code, out, err = rns(
        ["add-support", str(files["image"]), str(files["mask"]), "--labels", "0=road,1=bus", *memory, *TINY],
        capsys,
    )
    assert code == 0, err
    assert "1 image(s): 1 added, 0 replaced, 0 unchanged" in out and "classes: road, bus" in out

    code, out, err = rns(
        [
            "add-support",
            str(files["image2"]),
            str(files["binary"]),
            "--class",
            "my-bus",
            "--no-text",
            str(files["image"]),
            str(files["three"]),
            *memory,
            *TINY,
        ],
        capsys,
    )
    # The second pair's mask is not binary, refused under --class: nothing of this call is stored.
    assert code == 2 and "--class needs a binary mask" in err and err.count("\n") == 1
    assert [s.class_names for s in SupportMemory.open(files["memory"], create=False).sources()] == [
        ("road",), ("bus",)
    ]

    code, out, err = rns(
        [
            "add-support",
            str(files["image2"]),
            str(files["binary"]),
            "--class",
            "my-bus",
            "--no-text",
            *memory,
            *TINY,
        ],
        capsys,
    )
    assert code == 0, err
    store = SupportMemory.open(files["memory"], create=False)
    classes = {c.name: c for c in store.classes()}
    assert set(classes) == {"road", "bus", "my-bus"}
    assert not classes["my-bus"].has_text and classes["road"].text == "road"
    assert store.stats()["dim"] == 32 and store.fingerprint["model"] == "rns-tiny-test"

    code, out, err = rns(
        ["add-support", str(files["image"]), str(files["mask"]), "--labels", "0=road,1=bus", *memory, *TINY],
        capsys,
    )
    assert code == 0 and "0 added, 0 replaced, 1 unchanged" in out


def test_bulk_mode_pairs_folders_by_name(tmp_path: Path, capsys) -> None:
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    for i, stem in enumerate(("a", "b", "c")):
        write_image(images / f"{stem}.jpg", seed=i)
        write_mask(masks / f"{stem}.png", index_mask())
    classes = tmp_path / "classes.txt"
    classes.write_text("road\nbus\n", encoding="utf-8")
    code, out, err = rns(
        [
            "add-support",
            "--images",
            str(images),
            "--masks",
            str(masks),
            "--classes-file",
            str(classes),
            "--commit-every",
            "2",
            "--memory",
            str(tmp_path / "m.zarr"),
            *TINY,
        ],
        capsys,
    )
    assert code == 0, err
    assert "3 image(s): 3 added" in out
    assert SupportMemory.open(tmp_path / "m.zarr", create=False).stats()["n_prototypes"] == 6


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{image}", "{mask}"], "use exactly one of --class NAME"),
        (["{image}", "{mask}", "--class", "bus", "--labels", "0=a"], "--class and --labels both given"),
        (["{image}", "--class", "bus"], "must come in IMAGE MASK pairs"),
        (["--class", "bus"], "no support images given"),
        (["{image}", "{mask}", "--labels", "0=road,1=bus", "--text", "a bus"], "--text applies to one class"),
        (["{image}", "{binary}", "--class", "bus", "--text", "x", "--no-text"], "contradict each other"),
        (["{image}", "{mask}", "--labels", "0=road,1="], "value 1 maps to an empty class name"),
        (["{image}", "{mask}", "--labels", "0=road"], "mask values 1 have no class"),
        (["{image}", "{binary}", "--labels", "0=road,255=bus", "--images", "{tmp}"], "not both"),
        (["--images", "{tmp}"], "needs both --images DIR and --masks DIR"),
        (["{image}", "{empty}", "--class", "bus"], "is empty (0 bytes)"),
        (["{image}", "{small}", "--class", "bus"], "mask is 4x3 but its image"),
    ],
)
def test_bad_input_exits_2_with_one_line(args, message, files, tmp_path: Path, capsys) -> None:
    (tmp_path / "empty.png").write_bytes(b"")
    write_mask(tmp_path / "small.png", np.ones((3, 4)))
    names = {key: str(value) for key, value in files.items()}
    names.update(tmp=str(tmp_path), empty=str(tmp_path / "empty.png"), small=str(tmp_path / "small.png"))
    argv = ["add-support", *[a.format(**names) for a in args], "--memory", names["memory"], *TINY]
    code, out, err = rns(argv, capsys)
    assert code == 2
    assert err.startswith("rns: error: ") and err.count("\n") == 1 and message in err
    assert not files["memory"].exists()  # checked before the memory is even created


def test_memory_from_another_model_is_refused_untouched(files: dict[str, Path], capsys) -> None:
    store = SupportMemory.open(files["memory"])
    store.put_source("x", np.eye(1, 32, dtype=np.float32), ["road"], fingerprint={"model": "another"})
    before = (store.stats(), store.sources())
    code, out, err = rns(
        [
            "add-support",
            str(files["image"]),
            str(files["mask"]),
            "--labels",
            "0=road,1=bus",
            "--memory",
            str(files["memory"]),
            *TINY,
        ],
        capsys,
    )
    assert code == 2 and "other model settings" in err and err.count("\n") == 1 and "--memory" in err
    store.refresh()
    assert (store.stats(), store.sources()) == before
