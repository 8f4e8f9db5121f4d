"""`RNS_MEMORY` naming a file: segment, eval and ui say so in add-support's one line (exit 2), no
traceback, before the model is loaded."""

from __future__ import annotations

import pytest
from cli_runner import TINY
from PIL import Image
from synthetic_images import save_pair, two_texture_image

from rns.cli import cli
from rns.cli.errors import run_with_user_errors

ONE_LINE = "is a file, not a support memory; a memory is a directory"


@pytest.fixture()
def memory_file(tmp_path, monkeypatch):
    path = tmp_path / "memory.zarr"
    path.write_text("not a memory\n")
    monkeypatch.setenv("RNS_MEMORY", str(path))
    return path


def _one_line_error(argv: list[str], capsys, memory_file) -> None:
    code = run_with_user_errors(cli, argv)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and ONE_LINE in lines[0] and str(memory_file) in lines[0], err
    assert memory_file.read_text() == "not a memory\n"  # left as it was


def test_segment(memory_file, tmp_path, capsys) -> None:
    photo = tmp_path / "photo.png"
    Image.fromarray(two_texture_image(0)).save(photo)
    _one_line_error(["segment", str(photo), "--classes", "car", "--out", str(tmp_path / "out"), *TINY],
                    capsys, memory_file)  # fmt: skip


def test_eval(memory_file, tmp_path, capsys) -> None:
    image, mask = save_pair(tmp_path / "raw", "p0", 0)
    classes = tmp_path / "classes.txt"
    classes.write_text("background\nwidget\n")
    _one_line_error(["eval", "--images", str(image.parent), "--masks", str(mask.parent), "--classes-file",
                     str(classes), *TINY], capsys, memory_file)  # fmt: skip


def test_ui(memory_file, capsys, monkeypatch) -> None:
    pytest.importorskip("fastapi", reason="the ui extra is not installed: pip install '.[ui]'")
    import rns.ui.server

    def must_not_serve(*_args, **_kwargs):
        raise AssertionError("rns ui started serving over a memory path that is a file")

    monkeypatch.setattr(rns.ui.server, "serve", must_not_serve)
    _one_line_error(["ui", "--port", "0", *TINY], capsys, memory_file)
