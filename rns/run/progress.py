"""Ways to show a folder run's progress; the CLI picks one and passes it to `run_folder(observer=...)`.

- `RichProgress`: a live bar for people (images/s and ETA count only images actually segmented, so a
  resumed run's skipped images do not make the estimate wildly optimistic); failures are printed above
  the bar as they happen.
- `JsonLinesProgress`: one JSON object per line per event (`start`, `image`, `end`) for scripts.
- `FinalLineProgress`: only the final line (`--quiet`).
- `SilentProgress`: nothing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from rns.io.outputs import jsonable

if TYPE_CHECKING:
    from rns.run.run_events import ImageEvent, RunReport


class SilentProgress:
    """Shows nothing."""

    def on_start(self, total: int, out_dir: Path) -> None:
        pass

    def on_image(self, event: ImageEvent) -> None:
        pass

    def on_end(self, report: RunReport) -> None:
        pass


def final_line(report: RunReport) -> str:
    """The run's last line: what was done, and where; after Ctrl-C, how many images are left."""
    rate = report.images_per_second
    line = (f"{report.done} segmented, {report.skipped} already done, {report.failed} failed "
            f"in {report.seconds:.1f} s" + (f" ({rate:.2f} img/s)" if rate else "")
            + f"; outputs in {report.out_dir}")
    if report.interrupted:
        left = report.total - report.done - report.skipped - report.failed
        line = (f"interrupted: {left} of {report.total} image(s) left; the same command again resumes "
                f"(finished images are kept). {line}")
    return line


class FinalLineProgress:
    """`--quiet`: nothing while running, then the final line on stderr (`quiet`: only after Ctrl-C)."""

    def __init__(self, console: Console | None = None, *, quiet: bool = False) -> None:
        self._console = console or Console(stderr=True)
        self._silent = quiet

    def on_start(self, total: int, out_dir: Path) -> None:
        pass

    def on_image(self, event: ImageEvent) -> None:
        pass

    def on_end(self, report: RunReport) -> None:
        if report.stopped is not None:  # the error line that follows is the last word, not a summary
            return
        if not self._silent or report.interrupted:
            self._console.print(final_line(report), highlight=False, markup=False, soft_wrap=True)


class JsonLinesProgress:
    """Writes one JSON object per event to `stream` (stdout by default), flushed at once."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    def _emit(self, payload: dict[str, object]) -> None:
        stream = self._stream or sys.stdout
        text = json.dumps(jsonable(payload), ensure_ascii=False)
        # A path that is not valid UTF-8 (lone surrogates) becomes a JSON \\udcXX escape, not a failed write.
        stream.write(text.encode("utf-8", "backslashreplace").decode("utf-8") + "\n")
        stream.flush()

    def on_start(self, total: int, out_dir: Path) -> None:
        self._emit({"event": "start", "total": total, "out_dir": str(out_dir)})

    def on_image(self, event: ImageEvent) -> None:
        payload: dict[str, object] = {
            "event": "image",
            "status": event.status,
            "index": event.index,
            "total": event.total,
            "path": str(event.image.path),
            "stem": event.image.stem,
        }
        if event.reason is not None:
            payload["reason"] = event.reason
        if event.seconds:
            payload["seconds"] = dict(event.seconds)
        if event.outputs:
            payload["outputs"] = {kind: str(path) for kind, path in event.outputs.items()}
        self._emit(payload)

    def on_end(self, report: RunReport) -> None:
        self._emit({"event": "end", **report.to_json()})


class _RateColumn(ProgressColumn):
    """Images per second over the images segmented so far."""

    def render(self, task: Task) -> Text:
        speed = task.speed
        return Text(f"{speed:.2f} img/s" if speed else "- img/s", style="progress.data.speed")


class RichProgress:
    """A rich progress bar on stderr: `segmenting [bar] 12/40 1.9 img/s 0:00:06 ETA 0:00:15`.

    Skipped images (already done) shrink the bar's total instead of advancing it, so rate and ETA describe
    the remaining work.
    """

    def __init__(self, console: Console | None = None) -> None:
        self._console = console or Console(stderr=True)
        self._progress = Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            _RateColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self._console,
        )
        self._task = None
        self._skipped = 0
        self._failed = 0

    def _describe(self) -> str:
        notes = []
        if self._skipped:
            notes.append(f"{self._skipped} already done")
        if self._failed:
            notes.append(f"[red]{self._failed} failed[/red]")
        return "segmenting" + (f" ({', '.join(notes)})" if notes else "")

    def on_start(self, total: int, out_dir: Path) -> None:
        self._progress.start()
        self._task = self._progress.add_task(self._describe(), total=total)

    def on_image(self, event: ImageEvent) -> None:
        assert self._task is not None, "on_start was not called"
        if event.status == "skipped":
            self._skipped += 1
            task = self._progress.tasks[0]
            self._progress.update(
                self._task, total=max((task.total or 0) - 1, 0), description=self._describe()
            )
            return
        if event.status == "failed":
            self._failed += 1
            # Text, not markup: a path may contain "[...]".
            self._progress.console.print(
                Text.assemble(("failed ", "red"), event.reason or ""), highlight=False
            )
        self._progress.update(self._task, advance=1, description=self._describe())

    def on_end(self, report: RunReport) -> None:
        self._progress.stop()
        self._console.print(final_line(report), highlight=False, markup=False, soft_wrap=True)
