"""Folder runs on Ray Data (`rns segment SRC --out DST --ray [ADDRESS]`): a local run, many workers.

The driver (this process) does what needs one view of the whole run: it expands the inputs once, holds the
output folder's lock, finds the images already done exactly as a local resume does (`rns.run.done_records`),
and feeds the rest to Ray Data as a dataset of `{index, path, stem}` rows. A pool of actors
(`rns.run.ray_worker.SegmentWorker`), each with its own model built once from the driver's settings and the
memory pinned at the driver's commit, reads, segments and writes every image with the local run's own
functions. The driver consumes the per-image outcomes as they arrive, puts them back in input order, and
drives the same observers, counts, failures, exit code and `summary.json` as `rns.run.runner.run_folder`.

So a Ray run and a local run of the same images write the same files, byte for byte (summary.json up to
its timings), and either one resumes the other. Workers write into DST themselves: on a cluster, SRC and
DST must be visible to every node at the same path (a shared filesystem).
"""

from __future__ import annotations

import os
import pickle
import statistics
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from types import ModuleType

from rns.errors import InputError
from rns.io.atomic import remove_stale_temp_files
from rns.io.imageio import DEFAULT_MAX_PIXELS, TRANSPARENT_BACKGROUND
from rns.io.output_errors import output_write_error
from rns.io.outputs import DEFAULT_OVERLAY_ALPHA, DEFAULT_SAVE, parse_save
from rns.run.done_records import fresh_record, run_settings_key
from rns.run.image_work import (
    ImageOutcome,
    account,
    as_images,
    create_output_folder,
    skipped_outcome,
    write_run_files,
)
from rns.run.inputs import DEFAULT_GLOB, InputImage
from rns.run.outlock import output_folder_lock
from rns.run.progress import SilentProgress
from rns.run.ray_session import import_ray, ray_connection
from rns.run.ray_worker import SegmentWorker, WorkerRecipe, WriteJob, worker_recipe
from rns.run.run_events import ImageEvent, RunObserver, RunReport
from rns.segment.pipeline import Segmenter
from rns.threads import threads_per_worker

# Ray reserves this much CPU per CPU actor. Less than one, so that a pool sized to the CPUs leaves room
# for Ray Data's own tasks (a pool holding every CPU starves them and the run never starts).
DEFAULT_CPUS_PER_WORKER = 0.5
MAX_BLOCKS = 10_000  # one image per block up to this many: small blocks balance load and keep progress live


def run_folder_on_ray(
    segmenter: Segmenter,
    inputs: Sequence[str | os.PathLike] | Sequence[InputImage],
    out_dir: str | os.PathLike,
    *,
    address: str | None = None,
    workers: int | None = None,
    cpus_per_worker: float = DEFAULT_CPUS_PER_WORKER,
    local_cpus: int | None = None,
    save: str | Iterable[str] = DEFAULT_SAVE,
    force: bool = False,
    observer: RunObserver | None = None,
    glob: str = DEFAULT_GLOB,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    overlay_alpha: float = DEFAULT_OVERLAY_ALPHA,
    background: tuple[int, int, int] = TRANSPARENT_BACKGROUND,
    request: str | None = None,
) -> RunReport:
    """`rns.run.runner.run_folder` on Ray Data; same arguments and report, plus where and how wide to run.

    `address`: None or "local" starts a local Ray instance (`local_cpus` CPUs, default all), "auto" joins
    the running cluster, anything else goes to `ray.init(address=...)`; an existing connection is used
    as is. `workers`: actors, each with its own model (default: one per GPU on a GPU device, else one per
    CPU of the cluster, at most one per image to do). `segmenter` is the driver's own (from
    `build_segmenter`): its settings decide the outputs, the workers rebuild it and must match it.
    """
    import_ray(address)  # first: without Ray (or with a path for an address) nothing is created or written
    out = Path(out_dir)
    kinds = parse_save(save)
    images = as_images(inputs, glob, out)
    observer = observer or SilentProgress()
    key = run_settings_key(segmenter.settings_key(), overlay_alpha=overlay_alpha, background=background)
    recipe = worker_recipe(segmenter)
    job = WriteJob(str(out), kinds, key, len(images), max_pixels, overlay_alpha, background, os.getcwd())
    create_output_folder(out)
    with output_folder_lock(out), ray_connection(address, num_cpus=local_cpus) as ray:
        pool = _PoolShape(workers, cpus_per_worker, recipe.spec.device)
        recorded = {"fingerprint": request, "segmenter": segmenter.settings_key()} if request else None
        return _run_locked(ray, recipe, job, images, out, force, observer, pool, recorded)


class _PoolShape:
    """How many actors, and what each reserves, for this cluster and device type."""

    def __init__(self, workers: int | None, cpus_per_worker: float, device: str) -> None:
        if workers is not None and workers < 1:
            raise InputError(f"workers must be at least 1, not {workers}")
        self.workers = workers
        self.gpu = device == "cuda"
        self.cpus = 0.0 if self.gpu else cpus_per_worker

    def size(self, ray: ModuleType, images: int) -> int:
        if self.workers is not None:
            return max(1, min(self.workers, images))
        resources = ray.cluster_resources()
        available = resources.get("GPU", 0) if self.gpu else resources.get("CPU", 1)
        return max(1, min(int(available), images))

    def threads(self, ray: ModuleType, size: int) -> int:
        """torch threads per actor: the cluster's cores shared evenly among the `size` actors, so that
        actors on one node do not each start a pool as wide as the node (issue 24)."""
        return threads_per_worker(ray.cluster_resources().get("CPU", 1), size)


class _InOrder:
    """Reports outcomes to the report and observer in input order, whatever order workers finish in."""

    def __init__(self, report: RunReport, observer: RunObserver) -> None:
        self.report, self.observer = report, observer
        self.steps: dict[str, list[float]] = {}
        self.waiting: dict[int, ImageOutcome] = {}
        self.next = 1

    def add(self, index: int, outcome: ImageOutcome) -> None:
        self.waiting[index] = outcome
        while self.next in self.waiting:
            self._report(self.waiting.pop(self.next))
            self.next += 1

    def flush(self) -> None:
        """After an interruption: report what arrived, in order, gaps and all."""
        for index in sorted(self.waiting):
            self._report(self.waiting.pop(index))

    def _report(self, outcome: ImageOutcome) -> None:
        account(outcome, self.report, self.steps)
        self.observer.on_image(outcome.event)


def _run_locked(
    ray: ModuleType,
    recipe: WorkerRecipe,
    job: WriteJob,
    images: list[InputImage],
    out: Path,
    force: bool,
    observer: RunObserver,
    pool: _PoolShape,
    request: dict[str, str] | None = None,
) -> RunReport:
    """`run_folder_on_ray` once it holds the output folder's lock and a Ray connection."""
    remove_stale_temp_files(out)
    report = RunReport(out_dir=out, total=len(images), request=request)
    started = time.perf_counter()
    observer.on_start(len(images), out)
    ordered = _InOrder(report, observer)
    failed = False
    try:
        todo: list[int] = []
        for index, image in enumerate(images, start=1):
            if image.problem:  # unusable (a special file, a link out of its folder): never sent to a worker
                event = ImageEvent("failed", index, len(images), image, reason=image.problem)
                ordered.add(index, ImageOutcome(event))
                continue
            record = None if force else fresh_record(image, out, job.kinds, job.run_key)
            if record is None:
                todo.append(index)
            else:
                ordered.add(index, skipped_outcome(record, index, len(images), image))
        if todo:
            for index, outcome in _segment_on_ray(ray, recipe, job, images, todo, pool):
                ordered.add(index, outcome)
    except KeyboardInterrupt:
        report.interrupted = failed = True
        raise
    except BaseException as error:
        failed = True
        report.stop_with(error)
        raise
    finally:
        ordered.flush()
        report.seconds = time.perf_counter() - started
        report.median_seconds = {step: statistics.median(values) for step, values in ordered.steps.items()}
        try:
            write_run_files(report, job.run_key, job.kinds)
        except OSError as error:
            if not failed:
                raise output_write_error(error, out) from None
        observer.on_end(report)
    return report


def _segment_on_ray(
    ray: ModuleType,
    recipe: WorkerRecipe,
    job: WriteJob,
    images: list[InputImage],
    todo: list[int],
    pool: _PoolShape,
) -> Iterator[tuple[int, ImageOutcome]]:
    """Run the images numbered `todo` (1-based) on an actor pool; yields (index, outcome) as they finish."""
    rows = [{"index": i, "path": str(images[i - 1].path), "stem": images[i - 1].stem} for i in todo]
    size = pool.size(ray, len(rows))
    threads = pool.threads(ray, size)
    dataset = ray.data.from_items(rows, override_num_blocks=min(len(rows), MAX_BLOCKS))
    with warnings.catch_warnings():
        # `max_restarts` goes through Ray's generic remote arguments, deprecated for Ray 2.64 (no named
        # parameter exists yet). 0, as in a local run: a worker that crashes stops the run, which a rerun
        # resumes, instead of being restarted without end on an image that kills it (Ray's default).
        warnings.simplefilter("ignore", DeprecationWarning)
        results = dataset.map(
            SegmentWorker,
            fn_constructor_kwargs={"recipe": recipe, "job": job, "threads": threads},
            compute=ray.data.ActorPoolStrategy(size=size),
            num_cpus=pool.cpus,
            num_gpus=1 if pool.gpu else 0,
            max_restarts=0,
        )
    for row in results.iter_rows():
        kind, value = pickle.loads(row["result"])  # written by our own workers in this job
        if kind == "error":
            raise value  # a worker's one-line user error (the memory changed, other weights)
        if kind == "no-space":
            raise output_write_error(value, Path(job.out_dir))
        yield int(row["index"]), value
