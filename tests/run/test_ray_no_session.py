"""The parts of `--ray` that need no Ray session: the missing extra, bad arguments, the pinned memory.

Ray is installed where these tests run, so its absence is simulated: `sys.modules["ray"] = None` makes
every `import ray` fail as it would without the package: `--ray` then says which extra to install, exits
2 and writes nothing.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from cli_runner import TINY
from PIL import Image
from synthetic_images import two_texture_image

from rns.cli import cli
from rns.cli.errors import run_with_user_errors


@pytest.fixture()
def without_ray(monkeypatch):
    for name in ("ray", "ray.data"):
        monkeypatch.setitem(sys.modules, name, None)


def test_the_library_names_the_extra(without_ray):
    from rns.run.ray_session import RayUnavailableError, import_ray

    with pytest.raises(RayUnavailableError, match=r"pip install 'rns\[ray\]'") as caught:
        import_ray("auto")
    assert caught.value.exit_code == 2 and "\n" not in str(caught.value)


def test_the_cli_exits_2_with_one_line_and_writes_nothing(without_ray, tmp_path, capsys):
    photo = tmp_path / "photo.png"
    Image.fromarray(two_texture_image(0)).save(photo)
    out = tmp_path / "out"
    code = run_with_user_errors(cli, ["segment", str(photo), "--classes", "car", "--out", str(out), "--ray",
                                      *TINY])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert "pip install 'rns[ray]'" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_a_folder_taken_as_the_ray_address_is_refused(tmp_path):
    from rns.errors import InputError
    from rns.run.ray_session import check_address

    check_address("auto")
    check_address("ray://head:10001")
    with pytest.raises(InputError, match="put --ray after the inputs"):
        check_address(str(tmp_path))


def test_ray_workers_without_ray_is_refused(tmp_path, capsys):
    out = tmp_path / "out"
    code = run_with_user_errors(cli, ["segment", str(tmp_path), "--classes", "car", "--out", str(out),
                                      "--ray-workers", "2", *TINY])  # fmt: skip
    assert code == 2 and "--ray-workers needs --ray" in capsys.readouterr().err
    assert not out.exists()


def test_a_batch_size_with_ray_is_refused_before_anything_starts(tmp_path, capsys):
    pytest.importorskip("ray", reason="the ray extra is not installed (pip install -e '.[ray]')")
    out = tmp_path / "out"
    code = run_with_user_errors(cli, ["segment", str(tmp_path), "--classes", "car", "--out", str(out),
                                      "--batch-size", "4", "--ray", *TINY])  # fmt: skip
    assert code == 2 and "--batch-size applies to a local run" in capsys.readouterr().err
    assert not out.exists()


def test_a_memory_replaced_at_the_pinned_location_is_refused(tmp_path, capsys):
    from rns.run.ray_worker import MemoryChangedError, open_pinned_memory
    from support_memory import SupportMemory

    image, mask = tmp_path / "s.png", tmp_path / "m.png"
    Image.fromarray(two_texture_image(1)).save(image)
    Image.fromarray(np.ones((120, 160), dtype=np.uint8)).save(mask)
    location = tmp_path / "memory.zarr"
    code = run_with_user_errors(cli, ["add-support", str(image), str(mask), "--class", "car", "--memory",
                                      str(location), *TINY])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    with SupportMemory.open(location, create=False) as memory:
        commit, content = memory.commit, memory.content_id()
    assert open_pinned_memory(str(location), commit, content).content_id() == content
    with pytest.raises(MemoryChangedError, match="not the one this run started with"):
        open_pinned_memory(str(location), commit, "another memory's content id")
