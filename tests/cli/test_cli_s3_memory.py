"""`rns add-support` and `rns segment` with `--memory s3://...` against a real S3 API (moto on 127.0.0.1):
the same outputs as with a local memory, and bad locations as one line."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from synthetic_images import two_texture_image

sys.path.insert(0, str(Path(__file__).parent.parent))
from cli_runner import TINY, rns  # noqa: E402
from s3_server import local_s3  # noqa: E402

pytest.importorskip("s3fs", reason="the s3 extra is not installed (pip install -e '.[s3,test]')")


@pytest.fixture()
def photos(tmp_path: Path) -> tuple[list[str], Path]:
    """Two support pairs (image, mask) and a folder of three photos to segment."""
    files, folder = [], tmp_path / "photos"
    folder.mkdir()
    for seed in range(5):
        image = tmp_path / f"s{seed}.png"
        Image.fromarray(two_texture_image(seed)).save(image)
        if seed < 2:
            labels = np.zeros((120, 160), np.uint8)
            labels[:, 80:] = 1
            Image.fromarray(labels).save(tmp_path / f"s{seed}_mask.png")
            files += [str(image), str(tmp_path / f"s{seed}_mask.png")]
        else:
            image.rename(folder / image.name)
    return files, folder


def test_an_s3_memory_gives_the_outputs_of_a_local_one(photos, tmp_path, capsys) -> None:
    pairs, folder = photos
    with local_s3() as s3:
        url = f"s3://{s3.new_bucket()}/team/memory"
        outputs = {}
        for name, memory in (("local", str(tmp_path / "memory.zarr")), ("s3", url)):
            argv = ["add-support", *pairs, "--labels", "0=road,1=bus", "--memory", memory, *TINY]
            code, out, err = rns(argv, capsys)
            assert code == 0 and "2 added" in out, err
            out_dir = tmp_path / f"out-{name}"
            code, _, err = rns(["segment", str(folder), "--classes", "road,bus", "--memory", memory,
                                "--out", str(out_dir), "-q", *TINY], capsys)  # fmt: skip
            assert code == 0, err
            outputs[name] = {p.name: p.read_bytes() for p in sorted(out_dir.glob("*.png"))}
            code, out, err = rns(["memory", "list", "--memory", memory], capsys)
            assert code == 0 and "road" in out and "bus" in out, err
        assert len(outputs["s3"]) >= 3 and outputs["s3"] == outputs["local"]


def test_a_missing_bucket_is_one_line(tmp_path, capsys) -> None:
    with local_s3():
        code, _, err = rns(["memory", "list", "--memory", "s3://no-such-bucket-here/m"], capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "s3://no-such-bucket-here/m" in lines[0], err


def test_an_unreachable_endpoint_is_one_line(capsys, monkeypatch) -> None:
    with local_s3():
        from s3_server import forget_cached_filesystems, free_port

        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # nothing listens there
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
        forget_cached_filesystems()
        code, _, err = rns(["memory", "stats", "--memory", "s3://bucket/m"], capsys)
        forget_cached_filesystems()
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, err
    assert "cannot be reached" in lines[0] and "AWS_ENDPOINT_URL" in lines[0]
