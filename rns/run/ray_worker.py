"""The worker side of a folder run on Ray: rebuild the driver's segmenter once, then segment image by image.

Each Ray actor gets a `WorkerRecipe`: the backbone spec the driver resolved (model, weights, variant, and
the device type it ended up on), the classes as asked, the segment options, and the support memory pinned
at the commit the driver read. From it the actor builds its own `Segmenter` once and then checks that the
segmenter's settings key equals the driver's: the key covers the weights, the device type, the class plan
and the memory's content, so a worker with other weights on disk or a memory replaced in between fails
at once with one line instead of writing outputs that differ from a local run.

Per image the actor runs the very functions a local run runs (`rns.run.runner`): read, hash and decode,
segment, write every output and then the done record. Only the small outcome (status, reason, class pixel
counts, timings) travels back to the driver, pickled, which reports it in input order.
"""

from __future__ import annotations

import pickle
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rns.backbone.spec import BackboneSpec
from rns.errors import RnsError
from rns.io.output_errors import NO_SPACE
from rns.run.image_work import prepare_image, segment_and_submit
from rns.run.inputs import InputImage
from rns.segment.pipeline import Segmenter, SegmentOptions


class MemoryChangedError(RnsError):
    """The support memory a worker opened is not the one the driver pinned (replaced in between)."""


class WorkerMismatchError(RnsError):
    """A Ray worker built a segmenter whose outputs would differ from the driver's (weights, device, ...)."""


@dataclass(frozen=True)
class PinnedMemory:
    """The memory as the driver read it. `location` is a string, a folder or a URL (s3://...)."""

    location: str
    commit: int
    content_id: str


@dataclass(frozen=True)
class WorkerRecipe:
    """Everything a worker needs to build the driver's segmenter; small and picklable."""

    spec: BackboneSpec
    classes: tuple[str, ...]
    options: SegmentOptions
    memory: PinnedMemory | None
    settings_key: str  # the driver segmenter's `settings_key()`, which the worker's must equal


@dataclass(frozen=True)
class WriteJob:
    """Where and how a worker writes each image's outputs (the run's options, as the driver parsed them)."""

    out_dir: str
    kinds: frozenset[str]
    run_key: str  # the done records' settings key (`rns.run.done_records.run_settings_key`)
    total: int
    max_pixels: int | None
    overlay_alpha: float
    background: tuple[int, int, int]
    cwd: str  # the driver's working folder: relative paths are relative to it


def worker_recipe(segmenter: Segmenter) -> WorkerRecipe:
    """What a worker needs to rebuild `segmenter` (built on the driver by `build_segmenter`)."""
    backbone = segmenter.backbone
    memory = segmenter.memory
    pinned = None
    if memory is not None:
        pinned = PinnedMemory(str(memory.location), int(memory.commit), memory.content_id())
    # The device as resolved here ("auto" might resolve differently on a worker); its type is in the key.
    spec = replace(backbone.spec, device=backbone.device.type)
    return WorkerRecipe(spec, tuple(segmenter.requested_classes), segmenter.options, pinned,
                        segmenter.settings_key())  # fmt: skip


def open_pinned_memory(location: str, commit: int, content_id: str):
    """Open the memory at `location` at the commit the driver pinned, or raise `MemoryChangedError`.

    Writers may commit meanwhile: every worker still reads the driver's commit. The content check
    catches what a commit number cannot: another memory made at the same location since.
    """
    from support_memory import SupportMemory

    memory = SupportMemory.open(location, create=False, commit=commit)
    if memory.content_id() != content_id:
        memory.close()
        raise MemoryChangedError(
            f"the support memory {location} at commit {commit} is not the one this run started with (it "
            "was replaced meanwhile): run again"
        )
    return memory


def build_worker_segmenter(recipe: WorkerRecipe) -> Segmenter:
    """The driver's segmenter, rebuilt in this process from `recipe`, checked by its settings key."""
    import socket

    from rns.backbone.registry import build_from_spec
    from rns.paths import cache_dir

    backbone = build_from_spec(recipe.spec, text_cache_dir=cache_dir() / "text")
    pinned = recipe.memory
    memory = open_pinned_memory(pinned.location, pinned.commit, pinned.content_id) if pinned else None
    proposer = None
    if recipe.options.regions != "none":
        from rns.regions import build_region_proposer

        proposer = build_region_proposer(recipe.options.regions, sam_checkpoint=recipe.options.sam_checkpoint,
                                         device=str(backbone.device))  # fmt: skip
    segmenter = Segmenter(backbone, list(recipe.classes), memory=memory, options=recipe.options,
                          region_proposer=proposer)  # fmt: skip
    if segmenter.settings_key() != recipe.settings_key:
        raise WorkerMismatchError(
            f"the Ray worker on {socket.gethostname()} built a different segmenter than the driver "
            f"({backbone.spec.model}, {backbone.weights_label}, on {backbone.device}): give every node "
            "the same rns version, weights files and device type"
        )
    return segmenter


class SegmentWorker:
    """A Ray Data actor: one segmenter per worker process, then one call per image row.

    `threads`: torch threads for this actor's process (the driver gives each actor an even share of the
    cores, so that several actors on a node do not oversubscribe it). A user-fixable error while
    building (the memory changed, other weights) is kept and returned for every row rather than raised:
    Ray would retry the constructor and bury the one-line message in its own traceback, while the driver
    raises it as is on the first row that carries it.
    """

    def __init__(self, recipe: WorkerRecipe, job: WriteJob, threads: int | None = None) -> None:
        if threads is not None:  # this actor's share of the node's cores (`rns.threads.threads_per_worker`)
            import torch

            torch.set_num_threads(threads)
        self.job = job
        self.out = Path(job.out_dir)
        self.error: RnsError | None = None
        self.segmenter: Segmenter | None = None
        try:
            _enter_driver_folder(job.cwd)
            self.segmenter = build_worker_segmenter(recipe)
        except RnsError as error:
            self.error = error
        # `segment_and_submit` hands writing to a writer thread; here each row waits for it (one image
        # at a time per actor: the pool's size gives the parallelism).
        self.writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rns-write")

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        """Segment and write one image; returns {"index", "result"} with the pickled outcome."""
        job, index = self.job, int(row["index"])
        if self.segmenter is None:
            return {"index": index, "result": pickle.dumps(("error", self.error))}
        image = InputImage(Path(str(row["path"])), str(row["stem"]))
        # The driver already found this image not done: force=True skips a second look at its record.
        prepared = prepare_image(image, self.out, job.kinds, job.run_key, True, job.max_pixels,
                                 job.background)  # fmt: skip
        try:
            outcome = segment_and_submit(prepared, index, self.segmenter, self.writer, self.out, job.kinds,
                                          job.run_key, job.overlay_alpha, job.total).result()  # fmt: skip
        except OSError as error:
            if error.errno not in NO_SPACE:
                raise
            return {"index": index, "result": pickle.dumps(("no-space", error))}  # the driver stops the run
        return {"index": index, "result": pickle.dumps(("outcome", outcome))}


def _enter_driver_folder(cwd: str) -> None:
    """Work in the driver's folder, so that relative inputs, outputs and memory mean the same here."""
    import os
    import socket

    try:
        os.chdir(cwd)
    except OSError as error:
        raise RnsError(
            f"the driver's working folder {cwd} is not on the Ray node {socket.gethostname()} "
            f"({error.strerror}): SRC, DST and the memory must be on a filesystem every node mounts at the "
            "same path"
        ) from None
