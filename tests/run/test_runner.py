"""Folder runs with a fake segmenter: failures, resume, force, observers, interruption and SIGKILL safety."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from rich.console import Console

from rns.errors import InputError
from rns.io.outputs import read_labels_png
from rns.run.progress import JsonLinesProgress, RichProgress
from rns.run.runner import DONE_SUFFIX, done_record_path, run_folder
from rns.segmentation import Segmentation

CLASSES = ["background", "bright", "very bright"]


class BrightnessSegmenter:
    """Labels pixels by brightness: > 100 is "bright", > 200 "very bright". Counts its calls."""

    def __init__(self, key: str = "fake-v1", delay: float = 0.0, fail_on_height: int | None = None) -> None:
        self.key = key
        self.delay = delay
        self.fail_on_height = fail_on_height
        self.calls = 0

    def settings_key(self) -> str:
        return self.key

    def segment(self, image: Image.Image) -> Segmentation:
        self.calls += 1
        if self.delay:
            time.sleep(self.delay)
        if image.height == self.fail_on_height:
            raise InputError(f"image is {image.height} pixels high, which this fake refuses: resize it")
        grey = np.asarray(image.convert("L")).astype(np.int64)
        labels = (grey > 100).astype(np.int64) + (grey > 200)
        probabilities = np.stack([labels == k for k in range(len(CLASSES))]).astype(np.float16)
        return Segmentation(
            labels, list(CLASSES), probabilities, timings={"fake": 0.001}, info={"model": "fake"}
        )


def make_folder(root: Path, count: int = 20, corrupt: tuple[int, ...] = (4, 13)) -> list[Path]:
    """`count` small PNGs in root and root/sub (same file names in both), some of them corrupt."""
    rng = np.random.default_rng(7)
    paths = []
    for index in range(count):
        folder = root / ("sub" if index % 2 else "")
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"img{index // 2:02d}.png"
        pixels = rng.integers(0, 256, (24 + index, 32, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(path)
        if index in corrupt:
            data = path.read_bytes()
            path.write_bytes(data[: len(data) // 3] if index % 2 else b"this is not a png")
        paths.append(path)
    return paths


def _done_stems(out: Path) -> set[str]:
    return {str(p.relative_to(out))[: -len(DONE_SUFFIX)] for p in out.rglob(f"*{DONE_SUFFIX}")}


def test_folder_with_corrupt_files_then_resume(tmp_path):
    make_folder(tmp_path / "in")
    out = tmp_path / "out"
    segmenter = BrightnessSegmenter()
    report = run_folder(segmenter, [tmp_path / "in"], out)
    assert (report.total, report.done, report.skipped, report.failed) == (20, 18, 0, 2)
    assert report.exit_code == 1
    failed = sorted(str(f.path.relative_to(tmp_path)) for f in report.failures)
    assert failed == ["in/img02.png", "in/sub/img06.png"]
    assert all(str(f.path) in f.reason and "\n" not in f.reason for f in report.failures)
    assert segmenter.calls == 18
    assert len(_done_stems(out)) == 18
    assert len(list(out.rglob("*.labels.png"))) == 18
    assert (out / "img00.labels.png").exists() and (out / "sub" / "img00.labels.png").exists()

    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"] == {"total": 20, "done": 18, "skipped": 0, "failed": 2}
    assert summary["exit_code"] == 1
    assert len(summary["failures"]) == 2
    assert [c["name"] for c in summary["classes"]] == CLASSES
    pixels = sum(c["pixels"] for c in summary["classes"])
    expected_pixels = sum((24 + i) * 32 for i in range(20) if i not in (4, 13))
    assert pixels == expected_pixels
    classes = json.loads((out / "classes.json").read_text())["classes"]
    assert [c["name"] for c in classes] == CLASSES

    again = BrightnessSegmenter()
    rerun = run_folder(again, [tmp_path / "in"], out)
    assert (rerun.done, rerun.skipped, rerun.failed) == (0, 18, 2)
    assert again.calls == 0
    assert sorted(f.path for f in rerun.failures) == sorted(f.path for f in report.failures)
    assert rerun.exit_code == 1
    assert rerun.class_pixels == report.class_pixels


def test_force_redoes_everything(tmp_path):
    make_folder(tmp_path / "in", count=4, corrupt=())
    run_folder(BrightnessSegmenter(), [tmp_path / "in"], tmp_path / "out")
    segmenter = BrightnessSegmenter()
    report = run_folder(segmenter, [tmp_path / "in"], tmp_path / "out", force=True)
    assert (report.done, report.skipped, segmenter.calls) == (4, 0, 4)


def test_changed_settings_redo_all(tmp_path):
    make_folder(tmp_path / "in", count=4, corrupt=())
    run_folder(BrightnessSegmenter("a"), [tmp_path / "in"], tmp_path / "out")
    report = run_folder(BrightnessSegmenter("b"), [tmp_path / "in"], tmp_path / "out")
    assert (report.done, report.skipped) == (4, 0)
    report = run_folder(BrightnessSegmenter("b"), [tmp_path / "in"], tmp_path / "out", overlay_alpha=0.3)
    assert (report.done, report.skipped) == (4, 0)


def test_changed_touched_and_damaged_sources(tmp_path):
    paths = make_folder(tmp_path / "in", count=4, corrupt=())
    out = tmp_path / "out"
    run_folder(BrightnessSegmenter(), [tmp_path / "in"], out)

    # Same bytes, new mtime: recognised by content hash, skipped.
    stat = paths[0].stat()
    os.utime(paths[0], ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    # New content of the same size: redone.
    Image.fromarray(np.full((25, 32, 3), 255, dtype=np.uint8)).save(paths[1])
    # A deleted output: redone.
    (out / "img01.overlay.png").unlink()

    segmenter = BrightnessSegmenter()
    report = run_folder(segmenter, [tmp_path / "in"], out)
    assert (report.done, report.skipped) == (2, 2)
    assert read_labels_png(out / "sub" / "img00.labels.png").min() == 2  # the all-white image
    record = json.loads(done_record_path(out, "img00").read_text())
    assert record["source"]["mtime_ns"] == paths[0].stat().st_mtime_ns  # remembered: next time no hashing


def test_asking_for_more_outputs_redoes_and_fewer_skips(tmp_path):
    make_folder(tmp_path / "in", count=2, corrupt=())
    out = tmp_path / "out"
    run_folder(BrightnessSegmenter(), [tmp_path / "in"], out, save="labels")
    report = run_folder(BrightnessSegmenter(), [tmp_path / "in"], out, save="labels,rle")
    assert report.done == 2
    assert len(list(out.rglob("*.rle.json"))) == 2
    report = run_folder(BrightnessSegmenter(), [tmp_path / "in"], out, save="rle")
    assert report.skipped == 2


def test_segmenter_user_error_is_a_failure_but_a_bug_stops_the_run(tmp_path):
    make_folder(tmp_path / "in", count=4, corrupt=())
    # Image i is 24 + i pixels high: the fake refuses image 1 (in/sub/img00.png) and segments the rest.
    report = run_folder(BrightnessSegmenter(fail_on_height=25), [tmp_path / "in"], tmp_path / "out")
    assert (report.done, report.failed) == (3, 1)
    assert report.failures[0].path == tmp_path / "in" / "sub" / "img00.png"
    assert "25 pixels high" in report.failures[0].reason

    class Broken(BrightnessSegmenter):
        def segment(self, image):
            raise ZeroDivisionError("a bug")

    with pytest.raises(ZeroDivisionError):
        run_folder(Broken(), [tmp_path / "in"], tmp_path / "out2")


def test_an_error_while_writing_stops_the_run(tmp_path):
    make_folder(tmp_path / "in", count=3, corrupt=())

    class WrongSize(BrightnessSegmenter):
        def segment(self, image):
            seg = super().segment(image)
            seg.labels = seg.labels[:-1]  # a pipeline bug: labels smaller than the photo
            seg.probabilities = None
            return seg

    with pytest.raises(ValueError, match="but labels are"):
        run_folder(WrongSize(), [tmp_path / "in"], tmp_path / "out", save="overlay")
    assert not list((tmp_path / "out").rglob(f"*{DONE_SUFFIX}"))


def test_keyboard_interrupt_writes_summary_and_reraises(tmp_path):
    make_folder(tmp_path / "in", count=6, corrupt=())

    class Interrupting(BrightnessSegmenter):
        def segment(self, image):
            if self.calls == 2:
                raise KeyboardInterrupt
            return super().segment(image)

    with pytest.raises(KeyboardInterrupt):
        run_folder(Interrupting(), [tmp_path / "in"], tmp_path / "out")
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["interrupted"] is True
    assert summary["counts"]["done"] == 2
    report = run_folder(BrightnessSegmenter(), [tmp_path / "in"], tmp_path / "out")
    assert (report.done, report.skipped) == (4, 2)


def test_output_folder_inside_input_folder_is_not_read_back(tmp_path):
    make_folder(tmp_path / "in", count=3, corrupt=())
    run_folder(BrightnessSegmenter(), [tmp_path / "in"], tmp_path / "in" / "out")
    report = run_folder(BrightnessSegmenter(), [tmp_path / "in"], tmp_path / "in" / "out")
    assert (report.total, report.skipped) == (3, 3)


def test_json_lines_progress(tmp_path):
    make_folder(tmp_path / "in", count=5, corrupt=(2,))
    stream = io.StringIO()
    run_folder(BrightnessSegmenter(), [tmp_path / "in"], tmp_path / "out", observer=JsonLinesProgress(stream))
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [e["event"] for e in events] == ["start"] + ["image"] * 5 + ["end"]
    assert events[0]["total"] == 5
    statuses = [e["status"] for e in events[1:-1]]
    assert statuses.count("done") == 4 and statuses.count("failed") == 1
    assert [e["index"] for e in events[1:-1]] == [1, 2, 3, 4, 5]
    done = next(e for e in events if e.get("status") == "done")
    assert set(done["seconds"]) == {"read", "segment", "write", "total"}
    assert events[-1]["counts"]["failed"] == 1


def test_rich_progress_renders_failures_and_summary(tmp_path):
    make_folder(tmp_path / "in", count=3, corrupt=(1,))
    buffer = io.StringIO()
    console = Console(file=buffer, width=200, force_terminal=False)
    run_folder(BrightnessSegmenter(), [tmp_path / "in"], tmp_path / "out", observer=RichProgress(console))
    text = buffer.getvalue()
    assert "failed" in text and "img00.png" in text
    assert "2 segmented, 0 already done, 1 failed" in text


def test_single_loader_thread_and_explicit_files(tmp_path):
    paths = make_folder(tmp_path / "in", count=4, corrupt=())
    report = run_folder(
        BrightnessSegmenter(), [paths[0], paths[2]], tmp_path / "out", loader_threads=1, prefetch=1
    )
    assert report.done == 2
    assert sorted(_done_stems(tmp_path / "out")) == ["img00", "img01"]


_KILL_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[1])
    from test_runner import BrightnessSegmenter
    from rns.run.progress import JsonLinesProgress
    from rns.run.runner import run_folder
    run_folder(BrightnessSegmenter(delay=0.03), [sys.argv[2]], sys.argv[3], save="all",
               observer=JsonLinesProgress())
    """
)


def _check_outputs_valid(out: Path) -> set[str]:
    """Every file is complete and parses; every done record's outputs exist with the recorded size."""
    for png in out.rglob("*.png"):
        with Image.open(png) as image:
            image.load()
    for document in out.rglob("*.json"):
        json.loads(document.read_text())
    for npz in out.rglob("*.npz"):
        with np.load(npz) as data:
            assert data["probs"].dtype == np.uint8
    stems = _done_stems(out)
    for stem in stems:
        record = json.loads(done_record_path(out, stem).read_text())
        for entry in record["outputs"].values():
            assert (done_record_path(out, stem).parent / entry["name"]).stat().st_size == entry["bytes"]
    return stems


def test_sigkill_midway_then_rerun_completes(tmp_path):
    make_folder(tmp_path / "in", count=20, corrupt=())
    out = tmp_path / "out"
    script = tmp_path / "run.py"
    script.write_text(_KILL_SCRIPT)
    process = subprocess.Popen(
        [sys.executable, str(script), str(Path(__file__).parent), str(tmp_path / "in"), str(out)],
        stdout=subprocess.PIPE,
        text=True,
    )
    done = 0
    assert process.stdout is not None
    for line in process.stdout:
        if json.loads(line).get("status") == "done":
            done += 1
            if done == 7:
                process.send_signal(signal.SIGKILL)
                break
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL

    finished_before = _check_outputs_valid(out)
    assert 7 <= len(finished_before) < 20

    report = run_folder(BrightnessSegmenter(), [tmp_path / "in"], out, save="all")
    assert report.exit_code == 0
    assert report.skipped == len(finished_before)
    assert report.done == 20 - len(finished_before)
    assert len(_check_outputs_valid(out)) == 20
    assert [p for p in out.rglob("*") if p.name.endswith(".rns-tmp")] == []


def test_output_folder_that_cannot_be_created_is_one_line_input_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(InputError, match="cannot create output folder"):
        run_folder(BrightnessSegmenter(), make_folder(tmp_path / "in", count=1, corrupt=()), blocker / "out")


def test_a_write_error_of_one_image_fails_that_image_and_the_run_goes_on(tmp_path, monkeypatch):
    import errno

    import rns.run.image_work as image_work

    make_folder(tmp_path / "in", count=4, corrupt=())
    real_save = image_work.save_segmentation

    def save_or_refuse(seg, image, out, stem, *args, **kwargs):
        if stem == "img01":
            raise OSError(errno.EACCES, "Permission denied")
        return real_save(seg, image, out, stem, *args, **kwargs)

    monkeypatch.setattr(image_work, "save_segmentation", save_or_refuse)
    report = run_folder(BrightnessSegmenter(), [tmp_path / "in"], tmp_path / "out")
    assert report.done == 3 and report.failed == 1 and report.exit_code == 1
    assert "Permission denied" in report.failures[0].reason
    assert len(_done_stems(tmp_path / "out")) == 3


def test_a_full_disk_stops_the_run_with_one_error_naming_the_file(tmp_path, monkeypatch):
    """Every later image would fail the same way: one error, not one failure per image (issue 12)."""
    import errno

    import rns.run.image_work as image_work
    from rns.io.output_errors import OutputWriteError

    make_folder(tmp_path / "in", count=4, corrupt=())
    real_save = image_work.save_segmentation

    def save_or_disk_full(seg, image, out, stem, *args, **kwargs):
        if stem == "img01":
            raise OSError(errno.ENOSPC, "No space left on device", str(out / f"{stem}.labels.png"))
        return real_save(seg, image, out, stem, *args, **kwargs)

    monkeypatch.setattr(image_work, "save_segmentation", save_or_disk_full)
    with pytest.raises(OutputWriteError, match=r"no space left on device writing .*img01\.labels\.png"):
        run_folder(BrightnessSegmenter(), [tmp_path / "in"], tmp_path / "out", pending_writes=0)
    monkeypatch.setattr(image_work, "save_segmentation", real_save)
    report = run_folder(BrightnessSegmenter(), [tmp_path / "in"], tmp_path / "out")
    assert report.failed == 0 and report.done + report.skipped == 4 and report.skipped >= 1


def test_a_full_disk_when_writing_summary_json_is_one_error_and_no_half_written_file(tmp_path, monkeypatch):
    """0.1.0 crashed with a traceback here (issue 12, item 5)."""
    import errno

    import rns.run.image_work as image_work
    from rns.io.atomic import atomic_write_json as real_write
    from rns.io.output_errors import OutputWriteError

    make_folder(tmp_path / "in", count=2, corrupt=())

    def write_or_disk_full(path, payload, **kwargs):
        if Path(path).name == "summary.json":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_write(path, payload, **kwargs)

    monkeypatch.setattr(image_work, "atomic_write_json", write_or_disk_full)
    with pytest.raises(OutputWriteError, match=r"no space left on device writing .*summary\.json"):
        run_folder(BrightnessSegmenter(), [tmp_path / "in"], tmp_path / "out")
    assert not (tmp_path / "out" / "summary.json").exists()
    assert len(_done_stems(tmp_path / "out")) == 2  # the images themselves were finished and recorded
