"""Segmenting many images into a folder: resume, background decoding, per-file failures, progress events.

`run_folder` is the whole of `rns segment` minus argument parsing and printing. For every input image it
writes the requested outputs (see `rns.outputs`) and then, last, a small *done record* `<stem>.rns.json`
holding the run's settings key, the source file's size, mtime and content hash, and the size of every
output. A rerun skips an image only when that record matches: same settings, same source (by size and
mtime, or by content hash when only the mtime changed), and every requested output present with the
recorded size (see `rns.done_records`). Because every file is written atomically and the record comes
last, a run killed at any moment leaves each image either complete or redone next time, never
half-written. One run at a time holds the output folder (`rns.outlock`).

A bad input (missing, corrupt, too large) or a user-fixable error raised while segmenting it is reported,
counted and skipped; the run goes on. Any other exception is a bug and stops the run with its traceback.

Three stages overlap: 1-2 loader threads read and decode a few images ahead (a bounded queue of
futures), the calling thread runs the model, and one writer thread encodes and writes the outputs of the
previous images (PNG and zlib encoding release the GIL). With a fast GPU model, writing a 1080p overlay
costs about as much as segmenting, so this keeps the model busy. With `batch_size` above 1 (a GPU), the
model thread hands up to that many decoded images to one `segment_many` call, whose crops share forwards.
"""

from __future__ import annotations

import os
import statistics
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from PIL import Image

from rns.atomic import atomic_write_json, remove_stale_temp_files
from rns.batch_size import AUTO, BatchSize, resolve_batch_size
from rns.done_records import (
    DONE_SUFFIX,
    done_record_path,
    fresh_record,
    run_settings_key,
    stat_source,
    write_done_record,
)
from rns.errors import InputError, RnsError
from rns.imageio import DEFAULT_MAX_PIXELS, TRANSPARENT_BACKGROUND, bytes_content_hash, decode_image
from rns.inputs import DEFAULT_GLOB, InputImage, expand_inputs
from rns.outlock import output_folder_lock
from rns.output_errors import NO_SPACE, output_write_error
from rns.outputs import (
    DEFAULT_OVERLAY_ALPHA,
    DEFAULT_SAVE,
    parse_save,
    pixel_counts,
    save_segmentation,
    write_classes_json,
)
from rns.progress import SilentProgress
from rns.run_events import (
    CLASSES_NAME,
    RUN_SUMMARY_NAME,
    Failure,
    ImageEvent,
    ImageSegmenter,
    RunObserver,
    RunReport,
)
from rns.segmentation import Segmentation


@dataclass
class _Prepared:
    """What a loader thread hands the main thread for one input."""

    image: InputImage
    picture: Image.Image | None = None
    source: dict[str, object] | None = None  # size, mtime_ns, hash of the file as read
    record: dict[str, object] | None = None  # the matching done record, when skipped
    failure: str | None = None
    read_seconds: float = 0.0


def _prepare(
    image: InputImage,
    out_dir: Path,
    save: frozenset[str],
    key: str,
    force: bool,
    max_pixels: int | None,
    background: tuple[int, int, int],
) -> _Prepared:
    """Loader-thread work: skip check, then read, hash and decode. Never raises for a bad file."""
    if not force:
        record = fresh_record(image, out_dir, save, key)
        if record is not None:
            return _Prepared(image, record=record)
    started = time.perf_counter()
    try:
        try:
            with open(image.path, "rb") as handle:
                stat = os.fstat(handle.fileno())  # before reading: a later change shows as a new mtime
                data = handle.read()
        except FileNotFoundError as error:
            raise InputError(f"image {image.path} does not exist (any more): check the path") from error
        except IsADirectoryError as error:
            raise InputError(f"image {image.path} is a folder, not a file: name image files") from error
        except OSError as error:
            reason = error.strerror or type(error).__name__
            raise InputError(
                f"image {image.path} cannot be read ({reason}): check its permissions"
            ) from error
        picture = decode_image(data, image.path, max_pixels=max_pixels, background=background)
    except InputError as error:
        return _Prepared(image, failure=str(error))
    except Exception as error:  # one strange file must not end a long run; it is reported
        return _Prepared(
            image, failure=f"image {image.path} could not be decoded ({type(error).__name__}: {error})"
        )
    source = {**stat_source(stat), "hash": bytes_content_hash(data)}
    return _Prepared(image, picture=picture, source=source, read_seconds=time.perf_counter() - started)


def _as_images(
    inputs: Sequence[str | os.PathLike] | Sequence[InputImage], glob: str, out_dir: Path
) -> list[InputImage]:
    items = list(inputs)
    if items and all(isinstance(item, InputImage) for item in items):
        return items  # type: ignore[return-value]
    if any(isinstance(item, InputImage) for item in items):
        raise TypeError("inputs must be all paths or all InputImage, not a mix")
    return expand_inputs(items, glob=glob, exclude=[out_dir])  # type: ignore[arg-type]


def run_folder(
    segmenter: ImageSegmenter,
    inputs: Sequence[str | os.PathLike] | Sequence[InputImage],
    out_dir: str | os.PathLike,
    *,
    save: str | Iterable[str] = DEFAULT_SAVE,
    force: bool = False,
    observer: RunObserver | None = None,
    glob: str = DEFAULT_GLOB,
    loader_threads: int = 2,
    prefetch: int = 3,
    pending_writes: int = 2,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    overlay_alpha: float = DEFAULT_OVERLAY_ALPHA,
    background: tuple[int, int, int] = TRANSPARENT_BACKGROUND,
    batch_size: BatchSize = AUTO,
) -> RunReport:
    """Segment every input into `out_dir`, resuming a previous run; returns the report.

    `inputs` are paths (files, folders, `@list.txt`; expanded with `glob`, the output folder excluded) or
    an already expanded list of `InputImage`. `save` is a `--save` spec ("labels,overlay", "all", or a set).
    `force` redoes images that are already done. `loader_threads` (1-2) decode ahead of the model, at most
    `prefetch` images in memory; one writer thread encodes and writes outputs behind it, at most
    `pending_writes` images queued. `batch_size` images (a number, or "auto": see `rns.batch_size`) go
    through the segmenter's `segment_many` together when it has one; outputs do not depend on it, and an
    image that fails inside a batch is retried with the others one at a time, so it fails alone.
    Observer events arrive in input order. Writes `summary.json` and
    `classes.json` in `out_dir`, also when interrupted (KeyboardInterrupt is re-raised after that).

    The run holds a lock on `out_dir` (see `rns.outlock`): a second run into the same folder is refused
    with `OutputFolderBusyError` rather than mixing outputs of two class lists. A full disk stops the run
    with `OutputWriteError` (one line naming the file); what was finished stays and a rerun resumes.
    """
    out = Path(out_dir)
    kinds = parse_save(save)
    images = _as_images(inputs, glob, out)
    observer = observer or SilentProgress()
    key = run_settings_key(segmenter.settings_key(), overlay_alpha=overlay_alpha, background=background)
    batch = resolve_batch_size(batch_size, segmenter)  # not in the key: it changes no output
    _create_output_folder(out)
    with output_folder_lock(out):
        return _run_locked(segmenter, images, out, kinds, key, force, observer, loader_threads, prefetch,
                           pending_writes, max_pixels, overlay_alpha, background, batch)  # fmt: skip


def _create_output_folder(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(
            f"cannot create output folder {out} ({error.strerror}); choose another --out"
        ) from None


def _run_locked(
    segmenter: ImageSegmenter,
    images: list[InputImage],
    out: Path,
    kinds: frozenset[str],
    key: str,
    force: bool,
    observer: RunObserver,
    loader_threads: int,
    prefetch: int,
    pending_writes: int,
    max_pixels: int | None,
    overlay_alpha: float,
    background: tuple[int, int, int],
    batch: int = 1,
) -> RunReport:
    """`run_folder` once it holds the output folder's lock."""
    remove_stale_temp_files(out)
    report = RunReport(out_dir=out, total=len(images))
    steps: dict[str, list[float]] = {}
    started = time.perf_counter()
    observer.on_start(len(images), out)
    loader = ThreadPoolExecutor(max_workers=max(1, min(loader_threads, 2)), thread_name_prefix="rns-load")
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rns-write")
    loading: deque[Future[_Prepared]] = deque()
    # Outcomes in input order; a skipped or failed image gets an already-completed future.
    outcomes: deque[Future[_Outcome]] = deque()
    queue = iter(images)

    def load_ahead() -> None:  # a whole batch decoded ahead, plus `prefetch - 1` as without batching
        while len(loading) < max(1, prefetch) + batch - 1:
            item = next(queue, None)
            if item is None:
                return
            loading.append(loader.submit(_prepare, item, out, kinds, key, force, max_pixels, background))

    def report_finished(limit: int) -> None:
        """Report outcomes from the front of the queue that are finished, waiting while over `limit`."""
        while outcomes and (outcomes[0].done() or len(outcomes) > limit):
            outcome = outcomes.popleft().result()
            _account(outcome, report, steps)
            observer.on_image(outcome.event)

    failed = False
    try:
        load_ahead()
        index = 0
        group: list[tuple[int, _Prepared]] = []  # in input order; up to `batch` of them need the model
        while loading:
            prepared = loading.popleft().result()
            load_ahead()
            index += 1
            group.append((index, prepared))
            waiting = sum(_needs_model(item) for _, item in group)  # a skip or failure first: no wait
            if not _needs_model(group[0][1]) or waiting >= batch or not loading:
                outcomes.extend(
                    _segment_group(group, segmenter, writer, out, kinds, key, overlay_alpha, report.total)
                )
                group = []
            report_finished(max(0, pending_writes) + batch - 1)
        report_finished(0)
    except KeyboardInterrupt:
        report.interrupted = failed = True
        raise
    except OSError as error:
        failed = True
        raise output_write_error(error, out) from None
    except BaseException:
        failed = True
        raise
    finally:
        loader.shutdown(wait=True, cancel_futures=True)
        writer.shutdown(wait=True)  # images already segmented are still written and recorded
        for future in outcomes:  # after an interruption: images written while shutting down
            if future.exception() is None:
                _account(future.result(), report, steps)
                observer.on_image(future.result().event)
        report.seconds = time.perf_counter() - started
        report.median_seconds = {step: statistics.median(values) for step, values in steps.items()}
        try:
            _write_run_files(report, key, kinds)
        except OSError as error:
            if not failed:  # else the first error is the one to report
                raise output_write_error(error, out) from None
        observer.on_end(report)
    return report


@dataclass
class _Outcome:
    """One image's result as the report needs it; built off the main thread for written images."""

    event: ImageEvent
    class_names: list[str] | None = None
    pixels: Mapping[str, int] | None = None
    steps: Mapping[str, float] = field(default_factory=dict)


def _completed(outcome: _Outcome) -> Future[_Outcome]:
    future: Future[_Outcome] = Future()
    future.set_result(outcome)
    return future


def _skipped_outcome(record: Mapping[str, object], index: int, total: int, image: InputImage) -> _Outcome:
    """An up-to-date image: its class names and pixel counts come from its done record."""
    names, pixels = record.get("class_names"), record.get("pixels")
    return _Outcome(
        ImageEvent("skipped", index, total, image),
        class_names=[str(n) for n in names] if isinstance(names, list) else None,
        pixels={str(k): int(v) for k, v in pixels.items()} if isinstance(pixels, dict) else None,
    )


def _segment_and_submit(
    prepared: _Prepared,
    index: int,
    segmenter: ImageSegmenter,
    writer: ThreadPoolExecutor,
    out: Path,
    kinds: frozenset[str],
    key: str,
    overlay_alpha: float,
    total: int,
) -> Future[_Outcome]:
    """Main-thread work for one image: segment it and hand the writing to the writer thread."""
    image = prepared.image
    if prepared.record is not None:
        return _completed(_skipped_outcome(prepared.record, index, total, image))
    if prepared.failure is not None or prepared.picture is None:
        reason = prepared.failure or f"image {image.path} could not be read"
        return _completed(_Outcome(ImageEvent("failed", index, total, image, reason=reason)))
    began = time.perf_counter()
    try:
        seg = segmenter.segment(prepared.picture)
    except RnsError as error:
        return _completed(_Outcome(ImageEvent("failed", index, total, image, reason=str(error))))
    seconds = {"read": prepared.read_seconds, "segment": time.perf_counter() - began}
    return writer.submit(_write, prepared, seg, index, total, out, kinds, key, overlay_alpha, seconds)


def _needs_model(prepared: _Prepared) -> bool:
    """Whether an input is to be segmented (not skipped as up to date, not failed while loading)."""
    return prepared.record is None and prepared.failure is None and prepared.picture is not None


def _segment_group(
    group: list[tuple[int, _Prepared]],
    segmenter: ImageSegmenter,
    writer: ThreadPoolExecutor,
    out: Path,
    kinds: frozenset[str],
    key: str,
    overlay_alpha: float,
    total: int,
) -> list[Future[_Outcome]]:
    """`_segment_and_submit` for consecutive inputs, those that need the model segmented in one call.

    Falls back to one image at a time when there is nothing to batch, when the segmenter cannot batch,
    or when the batched call raises a user error: then only the image that caused it fails.
    """
    ready = [(index, prepared) for index, prepared in group if _needs_model(prepared)]
    segment_many = getattr(segmenter, "segment_many", None)

    def one_by_one() -> list[Future[_Outcome]]:
        return [_segment_and_submit(prepared, index, segmenter, writer, out, kinds, key, overlay_alpha, total)
                for index, prepared in group]

    if len(ready) < 2 or not callable(segment_many):
        return one_by_one()
    began = time.perf_counter()
    try:
        segmentations = segment_many([prepared.picture for _, prepared in ready])
    except RnsError:
        return one_by_one()
    share = (time.perf_counter() - began) / len(ready)
    results = {index: seg for (index, _), seg in zip(ready, segmentations, strict=True)}
    futures = []
    for index, prepared in group:
        if index not in results:  # skipped or failed while loading: an already completed outcome
            futures.append(_segment_and_submit(prepared, index, segmenter, writer, out, kinds, key,
                                               overlay_alpha, total))  # fmt: skip
            continue
        seconds = {"read": prepared.read_seconds, "segment": share}
        futures.append(writer.submit(_write, prepared, results[index], index, total, out, kinds, key,
                                     overlay_alpha, seconds))  # fmt: skip
    return futures


def _write(
    prepared: _Prepared,
    seg: Segmentation,
    index: int,
    total: int,
    out: Path,
    kinds: frozenset[str],
    key: str,
    overlay_alpha: float,
    seconds: dict[str, float],
) -> _Outcome:
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
        return _Outcome(ImageEvent("failed", index, total, image, reason=reason))
    steps = {**seconds, **{f"segmenter.{name}": float(value) for name, value in seg.timings.items()}}
    return _Outcome(
        ImageEvent("done", index, total, image, seconds=seconds, outputs=paths),
        class_names=list(seg.class_names),
        pixels=counts,
        steps=steps,
    )


def _account(outcome: _Outcome, report: RunReport, steps: dict[str, list[float]]) -> None:
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


def _write_run_files(report: RunReport, key: str, kinds: frozenset[str]) -> None:
    summary = report.to_json()
    summary["settings"] = key
    summary["save"] = sorted(kinds)
    summary["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    atomic_write_json(report.out_dir / RUN_SUMMARY_NAME, summary)
    if report.class_names:
        write_classes_json(report.out_dir / CLASSES_NAME, report.class_names)


__all__ = [
    "DONE_SUFFIX",
    "Failure",
    "ImageEvent",
    "ImageSegmenter",
    "RunObserver",
    "RunReport",
    "done_record_path",
    "run_folder",
    "run_settings_key",
]
