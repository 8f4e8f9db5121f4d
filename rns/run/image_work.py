"""One image's work in a folder run, shared by the local loop (`rns.run.runner`) and Ray (`rns.run.ray_run`).

`prepare_image` decides whether an image is already done (its resume record matches) and otherwise reads
and decodes it; `segment_and_submit` segments it and hands the writing to a writer thread;
`write_outputs` writes its files and, last, its done record; `account` folds an outcome into the run's
report and `write_run_files` writes `summary.json` and `classes.json`. Keeping them here, apart from the
loop that schedules them, is what lets a Ray run write exactly the files a local run writes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from PIL import Image

from rns.errors import InputError, RnsError
from rns.io.atomic import atomic_write_json
from rns.io.imageio import bytes_content_hash, decode_image, read_image_file
from rns.io.output_errors import NO_SPACE
from rns.io.outputs import (
    pixel_counts,
    save_segmentation,
    write_classes_json,
)
from rns.paths import printable
from rns.run.done_records import (
    fresh_record,
    stat_source,
    write_done_record,
)
from rns.run.inputs import InputImage, expand_inputs
from rns.run.run_events import (
    CLASSES_NAME,
    RUN_SUMMARY_NAME,
    Failure,
    ImageEvent,
    ImageSegmenter,
    RunReport,
)
from rns.segmentation import Segmentation


@dataclass
class PreparedImage:
    """What a loader thread hands the main thread for one input."""

    image: InputImage
    picture: Image.Image | None = None
    source: dict[str, object] | None = None  # size, mtime_ns, hash of the file as read
    record: dict[str, object] | None = None  # the matching done record, when skipped
    failure: str | None = None
    read_seconds: float = 0.0


def prepare_image(
    image: InputImage,
    out_dir: Path,
    save: frozenset[str],
    key: str,
    force: bool,
    max_pixels: int | None,
    background: tuple[int, int, int],
) -> PreparedImage:
    """Loader-thread work: skip check, then read, hash and decode. Never raises for a bad file."""
    if image.problem:
        return PreparedImage(image, failure=image.problem)
    if not force:
        record = fresh_record(image, out_dir, save, key)
        if record is not None:
            return PreparedImage(image, record=record)
    started = time.perf_counter()
    try:
        stat, data = read_image_file(image.path)
        picture = decode_image(data, image.path, max_pixels=max_pixels, background=background)
    except InputError as error:
        return PreparedImage(image, failure=str(error))
    except Exception as error:  # one strange file must not end a long run; it is reported
        return PreparedImage(
            image, failure=f"image {printable(image.path)} could not be decoded ({type(error).__name__}: "
                           f"{printable(str(error))})"
        )
    source = {**stat_source(stat), "hash": bytes_content_hash(data)}
    return PreparedImage(image, picture=picture, source=source, read_seconds=time.perf_counter() - started)


def as_images(
    inputs: Sequence[str | os.PathLike] | Sequence[InputImage], glob: str, out_dir: Path
) -> list[InputImage]:
    items = list(inputs)
    if items and all(isinstance(item, InputImage) for item in items):
        return items  # type: ignore[return-value]
    if any(isinstance(item, InputImage) for item in items):
        raise TypeError("inputs must be all paths or all InputImage, not a mix")
    return expand_inputs(items, glob=glob, exclude=[out_dir])  # type: ignore[arg-type]


def create_output_folder(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(
            f"cannot create output folder {out} ({error.strerror}); choose another --out"
        ) from None


@dataclass
class ImageOutcome:
    """One image's result as the report needs it; built off the main thread for written images."""

    event: ImageEvent
    class_names: list[str] | None = None
    pixels: Mapping[str, int] | None = None
    steps: Mapping[str, float] = field(default_factory=dict)


def completed(outcome: ImageOutcome) -> Future[ImageOutcome]:
    future: Future[ImageOutcome] = Future()
    future.set_result(outcome)
    return future


def skipped_outcome(record: Mapping[str, object], index: int, total: int, image: InputImage) -> ImageOutcome:
    """An up-to-date image: its class names and pixel counts come from its done record."""
    names, pixels = record.get("class_names"), record.get("pixels")
    return ImageOutcome(
        ImageEvent("skipped", index, total, image),
        class_names=[str(n) for n in names] if isinstance(names, list) else None,
        pixels={str(k): int(v) for k, v in pixels.items()} if isinstance(pixels, dict) else None,
    )


def segment_and_submit(
    prepared: PreparedImage,
    index: int,
    segmenter: ImageSegmenter,
    writer: ThreadPoolExecutor,
    out: Path,
    kinds: frozenset[str],
    key: str,
    overlay_alpha: float,
    total: int,
) -> Future[ImageOutcome]:
    """Main-thread work for one image: segment it and hand the writing to the writer thread."""
    image = prepared.image
    if prepared.record is not None:
        return completed(skipped_outcome(prepared.record, index, total, image))
    if prepared.failure is not None or prepared.picture is None:
        reason = prepared.failure or f"image {image.path} could not be read"
        return completed(ImageOutcome(ImageEvent("failed", index, total, image, reason=reason)))
    began = time.perf_counter()
    try:
        seg = segmenter.segment(prepared.picture)
    except RnsError as error:
        return completed(ImageOutcome(ImageEvent("failed", index, total, image, reason=str(error))))
    seconds = {"read": prepared.read_seconds, "segment": time.perf_counter() - began}
    return writer.submit(write_outputs, prepared, seg, index, total, out, kinds, key, overlay_alpha, seconds)


def write_outputs(
    prepared: PreparedImage,
    seg: Segmentation,
    index: int,
    total: int,
    out: Path,
    kinds: frozenset[str],
    key: str,
    overlay_alpha: float,
    seconds: dict[str, float],
) -> ImageOutcome:
    """Writer-thread work: every output, then the done record (the image's commit point)."""
    image = prepared.image
    began = time.perf_counter()
    counts = pixel_counts(seg)
    try:
        paths = save_segmentation(
            seg, prepared.picture, out, image.stem, kinds, source=image.path, overlay_alpha=overlay_alpha,
            counts=counts,
        )
        seconds = {**seconds, "write": time.perf_counter() - began}
        seconds["total"] = seconds["read"] + seconds["segment"] + seconds["write"]
        write_done_record(out, image, key, paths, prepared.source or {}, seg, counts, seconds)
    except OSError as error:
        if error.errno in NO_SPACE:  # every later image would fail the same way: stop the run
            raise
        # Permissions, a vanished folder: this image is not done (no done record), the run goes on.
        reason = f"could not write the outputs of {image.path} under {out} ({error.strerror or error}): " \
                 "check free space and permissions, then run again"
        return ImageOutcome(ImageEvent("failed", index, total, image, reason=reason))
    steps = {**seconds, **{f"segmenter.{name}": float(value) for name, value in seg.timings.items()}}
    return ImageOutcome(
        ImageEvent("done", index, total, image, seconds=seconds, outputs=paths),
        class_names=list(seg.class_names),
        pixels=counts,
        steps=steps,
    )


def account(outcome: ImageOutcome, report: RunReport, steps: dict[str, list[float]]) -> None:
    """Add one finished image to the report (main thread only)."""
    event = outcome.event
    if event.status == "done":
        report.done += 1
    elif event.status == "skipped":
        report.skipped += 1
    else:
        report.failures.append(Failure(event.image.path, event.reason or "unknown failure"))
    if outcome.class_names and not report.class_names:
        report.class_names = list(outcome.class_names)
    for name, count in (outcome.pixels or {}).items():
        report.class_pixels[name] = report.class_pixels.get(name, 0) + int(count)
    for step, value in outcome.steps.items():
        steps.setdefault(step, []).append(float(value))


def write_run_files(report: RunReport, key: str, kinds: frozenset[str]) -> None:
    summary = report.to_json()
    summary["settings"] = key
    summary["save"] = sorted(kinds)
    summary["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    atomic_write_json(report.out_dir / RUN_SUMMARY_NAME, summary)
    if report.class_names:
        write_classes_json(report.out_dir / CLASSES_NAME, report.class_names)
