"""What a folder run reports: per-image events, failures, the final report, and who listens to them.

These types sit below both the runner (which produces them) and `rns.run.progress` (which displays them),
so that neither imports the other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from PIL import Image

from rns.errors import RnsError
from rns.io.outputs import class_table
from rns.run.inputs import InputImage
from rns.segmentation import Segmentation

RUN_SUMMARY_FORMAT = "rns.run-summary/1"
RUN_SUMMARY_NAME = "summary.json"
CLASSES_NAME = "classes.json"

Status = Literal["done", "skipped", "failed"]


class ImageSegmenter(Protocol):
    """What the runner needs from a segmenter (`rns.segment.pipeline.Segmenter` is one)."""

    def segment(self, image: Image.Image) -> Segmentation:
        """Segment one RGB image."""
        ...

    def settings_key(self) -> str:
        """A hash of everything that changes the output (model, weights, classes, memory state, options)."""
        ...


@dataclass(frozen=True)
class ImageEvent:
    """What happened to one image; sent to the observer as soon as it is known."""

    status: Status
    index: int  # 1-based position in the run
    total: int
    image: InputImage
    reason: str | None = None  # one line, for failures
    seconds: Mapping[str, float] = field(default_factory=dict)  # read, segment, write, total (done only)
    outputs: Mapping[str, Path] = field(default_factory=dict)


@dataclass(frozen=True)
class Failure:
    """An image the run could not segment, and why (one line, naming the fix)."""

    path: Path
    reason: str


@dataclass
class RunReport:
    """The outcome of `run_folder`; `exit_code` is what the CLI should exit with (1 if anything failed)."""

    out_dir: Path
    total: int
    done: int = 0
    skipped: int = 0
    failures: list[Failure] = field(default_factory=list)
    class_names: list[str] = field(default_factory=list)
    class_pixels: dict[str, int] = field(default_factory=dict)  # over done and skipped images
    seconds: float = 0.0
    median_seconds: dict[str, float] = field(default_factory=dict)  # per step, over images done this run
    interrupted: bool = False
    # Set when an error stopped the run before its end (a full disk, a bug): why, and the exit code the
    # process ends with (2 for a user-fixable error, 1 for a traceback), so summary.json says the same.
    stopped: str | None = None
    stopped_exit_code: int = 1
    # What the request was and which segmenter key it gave (see `rns.run.resume_plan`); None: not recorded.
    request: dict[str, str] | None = None

    def stop_with(self, error: BaseException) -> None:
        """Record the error that ended the run early: a user-fixable one (`RnsError`) exits 2, a bug 1."""
        self.stopped = f"{type(error).__name__}: {error}"
        self.stopped_exit_code = 2 if isinstance(error, RnsError) else 1

    @property
    def failed(self) -> int:
        return len(self.failures)

    @property
    def exit_code(self) -> int:
        """What the process exits with, also written to summary.json so that the two always agree.

        0: all done; 1: some images failed, or a bug stopped the run; 2: the one image given failed (a
        plain input error, as for any other command), or a user-fixable error stopped the run (a full
        disk); 130: interrupted.
        """
        if self.interrupted:
            return 130
        if self.stopped is not None:
            return self.stopped_exit_code
        if not self.failures:
            return 0
        return 2 if self.total == 1 else 1

    @property
    def images_per_second(self) -> float | None:
        """Images segmented (not skipped) per second of wall time."""
        return self.done / self.seconds if self.done and self.seconds > 0 else None

    def class_shares(self) -> dict[str, float]:
        """Per class, the percentage of all labelled pixels of the run (over done and skipped images)."""
        total = max(sum(self.class_pixels.values()), 1)
        return {name: 100 * self.class_pixels.get(name, 0) / total for name in self.class_names}

    def to_json(self) -> dict[str, object]:
        total_pixels = max(sum(self.class_pixels.values()), 1)
        classes = [
            {
                **entry,
                "pixels": self.class_pixels.get(str(entry["name"]), 0),
                "fraction": self.class_pixels.get(str(entry["name"]), 0) / total_pixels,
            }
            for entry in class_table(self.class_names)
        ]
        return {
            "format": RUN_SUMMARY_FORMAT,
            "out_dir": str(self.out_dir),
            "counts": {
                "total": self.total,
                "done": self.done,
                "skipped": self.skipped,
                "failed": self.failed,
            },
            "failures": [{"path": str(f.path), "reason": f.reason} for f in self.failures],
            "classes": classes,
            "timings": {
                "wall_seconds": self.seconds,
                "images_per_second": self.images_per_second,
                "median_seconds": self.median_seconds,
            },
            "interrupted": self.interrupted,
            "stopped": self.stopped,
            "exit_code": self.exit_code,
            **({"request": self.request} if self.request else {}),
        }


class RunObserver(Protocol):
    """Receives the run's events; `rns.run.progress` has a rich bar, a JSON-lines writer and a silent one."""

    def on_start(self, total: int, out_dir: Path) -> None: ...

    def on_image(self, event: ImageEvent) -> None: ...

    def on_end(self, report: RunReport) -> None: ...
