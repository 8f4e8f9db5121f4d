"""Photos and masks are read without ever blocking: a FIFO, a device or a link to one is refused in one
line, at once, by the library's loaders (`rns.load_image`, `load_mask`: the same reader as folder runs)
and by add-support. (Folder listings, eval's included, take regular files only.)"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_runner import TINY, rns
from support_fakes import index_mask, write_image, write_mask

from rns.errors import InputError
from rns.io.imageio import load_image, load_mask, read_image_file

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo") or not Path("/dev/zero").exists(),
                                reason="needs FIFOs and /dev/zero (POSIX)")

# A blocking read would never return: each call runs in a daemon thread and must end well before this.
SECONDS = 20.0


def finishes(call: Callable[[], object]) -> object:
    """What `call` returned or raised, failing the test instead of hanging if it blocks."""
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as error:  # handed to the test thread to assert on
            outcome["value"] = error

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(SECONDS)
    assert not worker.is_alive(), f"still reading after {SECONDS} s: a special file blocked"
    return outcome["value"]


@pytest.fixture
def special(tmp_path: Path) -> dict[str, Path]:
    os.mkfifo(tmp_path / "pipe.png")
    (tmp_path / "zero.png").symlink_to("/dev/zero")
    return {"fifo": tmp_path / "pipe.png", "device": tmp_path / "zero.png"}


@pytest.mark.parametrize("kind", ["fifo", "device"])
@pytest.mark.parametrize("reader", [load_image, load_mask])
def test_loaders_refuse_special_files_without_reading_them(special, kind, reader) -> None:
    error = finishes(lambda: reader(special[kind]))
    assert isinstance(error, InputError), error
    assert "not a regular file" in str(error) and str(special[kind]) in str(error)


def test_a_file_over_the_byte_limit_is_refused_before_it_is_read(tmp_path) -> None:
    big = tmp_path / "big.png"
    big.write_bytes(b"\0" * 2048)
    with pytest.raises(InputError, match=r"mask .*big\.png is 2,048 bytes, over the 1,024"):
        read_image_file(big, "mask", max_bytes=1024)
    assert read_image_file(big, "mask", max_bytes=4096)[1] == b"\0" * 2048


def test_add_support_refuses_a_fifo_image_or_mask_in_one_line(special, tmp_path, capsys) -> None:
    image = write_image(tmp_path / "street.png", seed=1)
    mask = write_mask(tmp_path / "street_mask.png", index_mask())
    memory = tmp_path / "memory.zarr"
    for pair in ([special["fifo"], mask], [image, special["fifo"]]):
        argv = ["add-support", *map(str, pair), "--labels", "0=background,1=bus", "--memory", str(memory),
                *TINY]
        code, _, err = finishes(lambda argv=argv: rns(argv, capsys))
        assert code == 2, err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "pipe.png is not a" in lines[0], err  # (regular) file
    assert not memory.exists()  # nothing written
