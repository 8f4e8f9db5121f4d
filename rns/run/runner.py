"""Segmenting many images into a folder: resume, background decoding, per-file failures, progress events.

`run_folder` is the whole of `rns segment` minus argument parsing and printing. For every input image it
writes the requested outputs (see `rns.io.outputs`) and then, last, a small *done record* `<stem>.rns.json`
holding the run's settings key, the source file's size, mtime and content hash, and the size of every
output. A rerun skips an image only when that record matches: same settings, same source (by size and
mtime, or by content hash when only the mtime changed), and every requested output present with the
recorded size (see `rns.run.done_records`). Because every file is written atomically and the record comes
last, a run killed at any moment leaves each image either complete or redone next time, never
half-written. One run at a time holds the output folder (`rns.run.outlock`).

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
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from rns.errors import RnsError
from rns.io.atomic import remove_stale_temp_files
from rns.io.imageio import DEFAULT_MAX_PIXELS, TRANSPARENT_BACKGROUND
from rns.io.output_errors import output_write_error
from rns.io.outputs import (
    DEFAULT_OVERLAY_ALPHA,
    DEFAULT_SAVE,
    parse_save,
)
from rns.run.batch_size import AUTO, BatchSize, resolve_batch_size
from rns.run.done_records import (
    DONE_SUFFIX,
    done_record_path,
    run_settings_key,
)
from rns.run.image_work import (
    ImageOutcome,
    PreparedImage,
    account,
    as_images,
    create_output_folder,
    prepare_image,
    segment_and_submit,
    write_outputs,
    write_run_files,
)
from rns.run.inputs import DEFAULT_GLOB, InputImage
from rns.run.outlock import output_folder_lock
from rns.run.progress import SilentProgress
from rns.run.run_events import (
    Failure,
    ImageEvent,
    ImageSegmenter,
    RunObserver,
    RunReport,
)


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
    request: str | None = None,
) -> RunReport:
    """Segment every input into `out_dir`, resuming a previous run; returns the report.

    `inputs` are paths (files, folders, `@list.txt`; expanded with `glob`, the output folder excluded) or
    an already expanded list of `InputImage`. `save` is a `--save` spec ("labels,overlay", "all", or a set).
    `force` redoes images that are already done. `loader_threads` (1-2) decode ahead of the model, at most
    `prefetch` images in memory; one writer thread encodes and writes outputs behind it, at most
    `pending_writes` images queued. `batch_size` images (a number, or "auto": see `rns.run.batch_size`) go
    through the segmenter's `segment_many` together when it has one; outputs do not depend on it, and an
    image that fails inside a batch is retried with the others one at a time, so it fails alone.
    Observer events arrive in input order. Writes `summary.json` and
    `classes.json` in `out_dir`, also when interrupted (KeyboardInterrupt is re-raised after that).

    The run holds a lock on `out_dir` (see `rns.run.outlock`): a second run into the same folder is refused
    with `OutputFolderBusyError` rather than mixing outputs of two class lists. A full disk stops the run
    with `OutputWriteError` (one line naming the file); what was finished stays and a rerun resumes.

    `request`: the caller's request fingerprint (`rns.run.resume_plan`), recorded in `summary.json` with the
    segmenter's key, so that a rerun of the same request can tell that nothing is left before it loads.
    """
    out = Path(out_dir)
    kinds = parse_save(save)
    images = as_images(inputs, glob, out)
    observer = observer or SilentProgress()
    key = run_settings_key(segmenter.settings_key(), overlay_alpha=overlay_alpha, background=background)
    batch = resolve_batch_size(batch_size, segmenter)  # not in the key: it changes no output
    create_output_folder(out)
    with output_folder_lock(out):
        recorded = {"fingerprint": request, "segmenter": segmenter.settings_key()} if request else None
        return _run_locked(segmenter, images, out, kinds, key, force, observer, loader_threads, prefetch,
                           pending_writes, max_pixels, overlay_alpha, background, batch,
                           recorded)  # fmt: skip


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
    request: dict[str, str] | None = None,
) -> RunReport:
    """`run_folder` once it holds the output folder's lock."""
    remove_stale_temp_files(out)
    report = RunReport(out_dir=out, total=len(images), request=request)
    steps: dict[str, list[float]] = {}
    started = time.perf_counter()
    observer.on_start(len(images), out)
    loader = ThreadPoolExecutor(max_workers=max(1, min(loader_threads, 2)), thread_name_prefix="rns-load")
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rns-write")
    loading: deque[Future[PreparedImage]] = deque()
    # Outcomes in input order; a skipped or failed image gets an already-completed future.
    outcomes: deque[Future[ImageOutcome]] = deque()
    queue = iter(images)

    def load_ahead() -> None:  # a whole batch decoded ahead, plus `prefetch - 1` as without batching
        while len(loading) < max(1, prefetch) + batch - 1:
            item = next(queue, None)
            if item is None:
                return
            loading.append(loader.submit(prepare_image, item, out, kinds, key, force, max_pixels, background))

    def report_finished(limit: int) -> None:
        """Report outcomes from the front of the queue that are finished, waiting while over `limit`."""
        while outcomes and (outcomes[0].done() or len(outcomes) > limit):
            outcome = outcomes.popleft().result()
            account(outcome, report, steps)
            observer.on_image(outcome.event)

    failed = False
    try:
        load_ahead()
        index = 0
        group: list[tuple[int, PreparedImage]] = []  # in input order; up to `batch` of them need the model
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
        stopping = output_write_error(error, out)
        report.stopped, report.stopped_exit_code = str(stopping), 2
        raise stopping from None
    except BaseException as error:
        failed = True
        report.stop_with(error)
        raise
    finally:
        loader.shutdown(wait=True, cancel_futures=True)
        writer.shutdown(wait=True)  # images already segmented are still written and recorded
        for future in outcomes:  # after an interruption: images written while shutting down
            if future.exception() is None:
                account(future.result(), report, steps)
                observer.on_image(future.result().event)
        report.seconds = time.perf_counter() - started
        report.median_seconds = {step: statistics.median(values) for step, values in steps.items()}
        try:
            write_run_files(report, key, kinds)
        except OSError as error:
            if not failed:  # else the first error is the one to report
                raise output_write_error(error, out) from None
        observer.on_end(report)
    return report


def _needs_model(prepared: PreparedImage) -> bool:
    """Whether an input is to be segmented (not skipped as up to date, not failed while loading)."""
    return prepared.record is None and prepared.failure is None and prepared.picture is not None


def _segment_group(
    group: list[tuple[int, PreparedImage]],
    segmenter: ImageSegmenter,
    writer: ThreadPoolExecutor,
    out: Path,
    kinds: frozenset[str],
    key: str,
    overlay_alpha: float,
    total: int,
) -> list[Future[ImageOutcome]]:
    """`segment_and_submit` for consecutive inputs, those that need the model segmented in one call.

    Falls back to one image at a time when there is nothing to batch, when the segmenter cannot batch,
    or when the batched call raises a user error: then only the image that caused it fails.
    """
    ready = [(index, prepared) for index, prepared in group if _needs_model(prepared)]
    segment_many = getattr(segmenter, "segment_many", None)

    def one_by_one() -> list[Future[ImageOutcome]]:
        return [segment_and_submit(prepared, index, segmenter, writer, out, kinds, key, overlay_alpha, total)
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
            futures.append(segment_and_submit(prepared, index, segmenter, writer, out, kinds, key,
                                               overlay_alpha, total))  # fmt: skip
            continue
        seconds = {"read": prepared.read_seconds, "segment": share}
        futures.append(writer.submit(write_outputs, prepared, results[index], index, total, out, kinds, key,
                                     overlay_alpha, seconds))  # fmt: skip
    return futures


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
