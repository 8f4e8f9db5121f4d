"""Issue 16, GPU throughput: `rns segment --batch-size N` changes speed, never outputs.

A folder run that gives the backbone 3 images at a time must write exactly the files of a run that gives it
one at a time (JSON compared without its timings), keep the same resume key (a rerun with another batch
size skips everything), report events in input order, and let a bad image fail alone: a corrupt file fails
while loading, before batching; a user error inside a batched call is retried one image at a time.
Real CamVid photos and the tiny random model through the CLI; a fake segmenter for the fallback.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from cli_runner import TINY, rns
from PIL import Image
from shared_data import CAMVID  # RNS_SHARED, else ../shared

from rns.cli import cli
from rns.cli.errors import run_with_user_errors
from rns.errors import InputError
from rns.run.runner import run_folder
from rns.segmentation import Segmentation

# What changes from run to run in the JSON files: timings, and the size of files that hold timings.
VOLATILE = {"seconds", "timings", "finished_at", "out_dir"}


def stable(value: object) -> object:
    """A JSON value without timings (and without the byte size of the per-image summary, which holds them)."""
    if isinstance(value, dict):
        kept = {key: stable(item) for key, item in value.items() if key not in VOLATILE}
        if kept.get("name", "").endswith(".summary.json"):
            kept.pop("bytes", None)
        return kept
    if isinstance(value, list):
        return [stable(item) for item in value]
    return value


def output_files(out: Path) -> dict[str, bytes]:
    """Every file of an output folder (but the lock), JSON made stable, keyed by relative path."""
    files = {}
    for path in sorted(out.rglob("*")):
        if not path.is_file() or path.name.startswith(".") or "lock" in path.name:
            continue
        data = path.read_bytes()
        if path.suffix == ".json":
            data = json.dumps(stable(json.loads(data)), sort_keys=True).encode()
        files[str(path.relative_to(out))] = data
    return files


@pytest.fixture(scope="module")
def camvid_run(tmp_path_factory) -> Path:
    """A folder of 5 CamVid test photos (one turned portrait) and one corrupt file, and a 1-image memory."""
    if not (CAMVID / "classes.txt").is_file():
        pytest.skip(f"CamVid not found at {CAMVID} (RNS_SHARED=DIR sets the folder holding data/camvid)")
    root = tmp_path_factory.mktemp("batch-run")
    photos = root / "photos"
    photos.mkdir()
    tests = sorted((CAMVID / "test" / "images").glob("*.jpg"))[:5]
    for path in tests[:4]:
        shutil.copy(path, photos / path.name)
    Image.open(tests[4]).transpose(Image.Transpose.ROTATE_90).save(photos / "portrait.png")
    (photos / "broken.jpg").write_bytes(tests[0].read_bytes()[:500])
    support = sorted((CAMVID / "train" / "images").glob("*.jpg"))[0]
    for folder in ("imgs", "masks"):
        (root / folder).mkdir()
    shutil.copy(support, root / "imgs" / support.name)
    shutil.copy(CAMVID / "train" / "masks" / f"{support.stem}.png", root / "masks" / f"{support.stem}.png")
    code = run_with_user_errors(cli, ["add-support", "--images", str(root / "imgs"), "--masks",
                                      str(root / "masks"), "--classes-file", str(CAMVID / "classes.txt"),
                                      "--memory", str(root / "mem.zarr"), *TINY])  # fmt: skip
    assert code == 0
    return root


def segment(root: Path, out: str, capsys, *extra: str) -> tuple[int, str, str]:
    return rns(["segment", str(root / "photos"), "--out", str(root / out), "--memory", str(root / "mem.zarr"),
                "--save", "all", *extra, *TINY], capsys)  # fmt: skip


def test_batch_of_three_writes_the_files_of_one_at_a_time_and_resumes_it(camvid_run, capsys, monkeypatch):
    from rns.segment.pipeline import Segmenter

    batches: list[int] = []
    segment_many = Segmenter.segment_many

    def counted(self, images):
        batches.append(len(images))
        return segment_many(self, images)

    monkeypatch.setattr(Segmenter, "segment_many", counted)
    code, _, err = segment(camvid_run, "one", capsys, "--batch-size", "1", "-q")
    assert code == 1, err  # the corrupt file fails, the run goes on
    assert batches == []
    code, stdout, err = segment(camvid_run, "three", capsys, "--batch-size", "3", "--json")
    assert code == 1, err
    assert batches == [3, 2]  # 5 readable photos (broken.jpg fails while loading, before batching)
    one, three = output_files(camvid_run / "one"), output_files(camvid_run / "three")
    assert len([name for name in one if name.endswith(".labels.png")]) == 5
    assert sorted(one) == sorted(three)
    for name in one:
        assert one[name] == three[name], name
    summary = json.loads((camvid_run / "three" / "summary.json").read_text())
    assert summary["counts"] == {"total": 6, "done": 5, "skipped": 0, "failed": 1}
    assert [Path(f["path"]).name for f in summary["failures"]] == ["broken.jpg"]
    # Events in input order, every image once, as without batching.
    events = [json.loads(line) for line in stdout.splitlines()]
    images = [event for event in events if event.get("event") == "image"]
    assert [event["index"] for event in images] == list(range(1, 7))
    # The batch size is not in the resume key: a rerun with another one finds everything up to date.
    code, _, err = segment(camvid_run, "one", capsys, "--batch-size", "4", "-q")
    assert code == 1, err
    counts = json.loads((camvid_run / "one" / "summary.json").read_text())["counts"]
    assert counts == {"total": 6, "done": 0, "skipped": 5, "failed": 1}


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5", ""])
def test_a_bad_batch_size_is_one_line_and_exit_2(value, tmp_path, capsys):
    photo = tmp_path / "p.png"
    Image.fromarray(np.zeros((20, 20, 3), dtype=np.uint8)).save(photo)
    code, _, err = rns(["segment", str(photo), "--classes", "car", "--out", str(tmp_path / "out"),
                        "--batch-size", value, *TINY], capsys)  # fmt: skip
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "--batch-size" in err and "auto" in err
    assert not (tmp_path / "out").exists()  # refused before anything is built or written


class BatchingSegmenter:
    """Labels by brightness; refuses images `bad_height` pixels high, alone or inside a batch."""

    def __init__(self, bad_height: int | None = None) -> None:
        self.bad_height = bad_height
        self.batches: list[int] = []
        self.singles = 0

    def settings_key(self) -> str:
        return "batching-fake"

    def segment(self, image: Image.Image) -> Segmentation:
        self.singles += 1
        if image.height == self.bad_height:
            raise InputError(f"image is {image.height} pixels high, which this fake refuses: resize it")
        labels = (np.asarray(image.convert("L")) > 100).astype(np.int64)
        return Segmentation(labels, ["dark", "bright"], None, timings={}, info={"model": "fake"})

    def segment_many(self, images: list[Image.Image]) -> list[Segmentation]:
        self.batches.append(len(images))
        if any(image.height == self.bad_height for image in images):
            raise InputError("one image of the batch is refused")
        self.singles -= len(images)  # counted as batched, not single
        return [self.segment(image) for image in images]


def write_photos(folder: Path, count: int) -> None:
    folder.mkdir()
    rng = np.random.default_rng(3)
    for index in range(count):
        pixels = rng.integers(0, 256, (20 + index, 30, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img{index}.png")


def test_a_user_error_inside_a_batch_fails_only_that_image(tmp_path):
    write_photos(tmp_path / "in", 7)
    segmenter = BatchingSegmenter(bad_height=21)  # img1
    report = run_folder(segmenter, [tmp_path / "in"], tmp_path / "out", batch_size=3)
    assert (report.done, report.failed) == (6, 1)
    assert [failure.path.name for failure in report.failures] == ["img1.png"]
    assert segmenter.batches == [3, 3]  # img0-2 (refused, redone one by one), img3-5; img6 alone
    assert segmenter.singles == 4  # img0, img1 (fails), img2 after the refused batch, and img6
    reference = run_folder(BatchingSegmenter(bad_height=21), [tmp_path / "in"], tmp_path / "ref",
                           batch_size=1)  # fmt: skip
    assert (reference.done, reference.failed) == (6, 1)
    for index in (0, 2, 3, 4, 5, 6):
        name = f"img{index}.labels.png"
        assert (tmp_path / "out" / name).read_bytes() == (tmp_path / "ref" / name).read_bytes()


def test_auto_without_a_backbone_is_one_image_at_a_time(tmp_path):
    write_photos(tmp_path / "in", 3)
    segmenter = BatchingSegmenter()
    report = run_folder(segmenter, [tmp_path / "in"], tmp_path / "out")  # batch_size="auto"
    assert report.done == 3 and segmenter.batches == [] and segmenter.singles == 3
