"""Folder runs on what a careless user or an attacker leaves in a folder: links out of it, names that are
not UTF-8, FIFOs and devices, the output folder inside the input. Each is one failure line, the rest of
the folder is segmented, nothing blocks, and summary.json's exit code is the process's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rns.run.runner import run_folder
from tests.run.test_runner import BrightnessSegmenter, make_folder

REPO = Path(__file__).resolve().parents[2]


def _photo(path: Path, height: int = 20) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((height, 16, 3), 150, np.uint8)).save(path)
    return path


def _summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text(encoding="utf-8"))


def test_a_link_out_of_the_input_folder_is_one_failure_and_the_rest_is_segmented(tmp_path) -> None:
    make_folder(tmp_path / "in", count=3, corrupt=())
    secret = _photo(tmp_path / "elsewhere" / "secret.png")
    (tmp_path / "in" / "escape.png").symlink_to(secret)
    (tmp_path / "in" / "inside.png").symlink_to(tmp_path / "in" / "img00.png")  # inside: fine, same file
    (tmp_path / "in" / "dangling.png").symlink_to(tmp_path / "in" / "gone.png")
    report = run_folder(BrightnessSegmenter(), [tmp_path / "in"], tmp_path / "out")
    assert report.done == 3
    reasons = {failure.path.name: failure.reason for failure in report.failures}
    assert set(reasons) == {"escape.png", "dangling.png"}
    assert "link leading out of the input folder" in reasons["escape.png"]
    assert "secret" not in reasons["escape.png"]  # says nothing about what lies outside
    assert "broken link" in reasons["dangling.png"]
    assert _summary(tmp_path / "out")["exit_code"] == report.exit_code == 1


def test_a_file_name_that_is_not_utf8_is_one_failure_and_a_rerun_gets_as_far(tmp_path) -> None:
    make_folder(tmp_path / "in", count=3, corrupt=())
    try:
        _photo(tmp_path / "in" / os.fsdecode(b"caf\xe9.png"))
    except (OSError, UnicodeEncodeError) as error:
        pytest.skip(f"this file system does not take non-UTF-8 names ({error})")
    for _ in range(2):  # the rerun resumes the good images and reports the same one line
        report = run_folder(BrightnessSegmenter(), [tmp_path / "in"], tmp_path / "out")
        assert report.done + report.skipped == 3
        (failure,) = report.failures
        assert "caf\\xe9.png" in failure.reason and "not valid UTF-8" in failure.reason
        summary = _summary(tmp_path / "out")
        assert summary["exit_code"] == 1 and summary["counts"]["failed"] == 1
        assert os.fsencode(summary["failures"][0]["path"]).endswith(b"caf\xe9.png")  # round-trips


def _run_in_child(tmp_path: Path, inputs: list[str], timeout: float = 120) -> dict:
    """run_folder in a child process (bounded in time and address space), so a hang or a runaway read
    fails the test instead of blocking or exhausting the machine."""
    script = textwrap.dedent(f"""
        import json, resource, sys
        resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))
        from rns.run.runner import run_folder
        from tests.run.test_runner import BrightnessSegmenter
        report = run_folder(BrightnessSegmenter(), {inputs!r}, {str(tmp_path / "out")!r})
        print(json.dumps({{"done": report.done, "exit": report.exit_code,
                           "failures": {{f.path.name: f.reason for f in report.failures}}}}))
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    finished = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=timeout)  # fmt: skip
    assert finished.returncode == 0, finished.stderr[-2000:]
    return json.loads(finished.stdout.strip().splitlines()[-1])


def test_fifos_in_a_folder_named_directly_or_listed_never_block(tmp_path) -> None:
    make_folder(tmp_path / "in", count=2, corrupt=())
    os.mkfifo(tmp_path / "in" / "pipe.png")
    os.mkfifo(tmp_path / "direct.jpg")
    os.mkfifo(tmp_path / "listed.jpg")
    listing = tmp_path / "list.txt"
    listing.write_text("listed.jpg\n")
    result = _run_in_child(tmp_path, [str(tmp_path / "in"), str(tmp_path / "direct.jpg"), f"@{listing}"])
    assert result["done"] == 2 and result["exit"] == 1
    assert set(result["failures"]) == {"pipe.png", "direct.jpg", "listed.jpg"}
    assert all("FIFO" in reason for reason in result["failures"].values()), result["failures"]


@pytest.mark.skipif(not Path("/dev/zero").exists() or not Path("/dev/urandom").exists(),
                    reason="no /dev/zero or /dev/urandom on this system")  # fmt: skip
def test_links_to_endless_devices_are_refused_without_reading_them(tmp_path) -> None:
    make_folder(tmp_path / "in", count=2, corrupt=())
    (tmp_path / "in" / "zero.png").symlink_to("/dev/zero")
    (tmp_path / "zero.jpg").symlink_to("/dev/urandom")  # named directly: taken, but only if a regular file
    result = _run_in_child(tmp_path, [str(tmp_path / "in"), str(tmp_path / "zero.jpg")])
    assert result["done"] == 2
    assert "link leading out of the input folder" in result["failures"]["zero.png"]
    assert "a device, not a regular file" in result["failures"]["zero.jpg"]


def test_the_output_folder_is_never_read_back(tmp_path) -> None:
    make_folder(tmp_path / "in", count=3, corrupt=())
    # --out is the input folder itself: outputs land next to the photos, a rerun takes only the photos.
    for _ in range(2):
        report = run_folder(BrightnessSegmenter(), [tmp_path / "in"], tmp_path / "in", save="labels,overlay")
        assert report.total == 3 and not report.failures
    assert report.skipped == 3
    # `in2/*` after a run into in2/out names the output folder itself: only the photos are taken.
    make_folder(tmp_path / "in2", count=3, corrupt=())
    run_folder(BrightnessSegmenter(), [tmp_path / "in2"], tmp_path / "in2" / "out")
    named = sorted(str(path) for path in (tmp_path / "in2").iterdir())
    assert str(tmp_path / "in2" / "out") in named
    report = run_folder(BrightnessSegmenter(), named, tmp_path / "in2" / "out")
    assert (report.total, report.skipped) == (3, 3)


def test_summary_json_says_the_exit_code_of_a_run_a_bug_stopped(tmp_path) -> None:
    make_folder(tmp_path / "in", count=4, corrupt=())

    class BrokenOnThird(BrightnessSegmenter):
        def segment(self, image):
            if self.calls == 2:
                raise ZeroDivisionError("a bug")
            return super().segment(image)

    with pytest.raises(ZeroDivisionError):
        run_folder(BrokenOnThird(), [tmp_path / "in"], tmp_path / "out")
    summary = _summary(tmp_path / "out")
    assert summary["exit_code"] == 1  # what the traceback ends the process with, not 0
    assert "ZeroDivisionError" in summary["stopped"]
