"""Images/s of a local folder run against the same run on a local Ray instance (`rns segment --ray`).

    python benchmarks/ray_folder.py [--images 16] [--model rns-tiny-test] [--rounds 3] [--cpus 2]
    python benchmarks/ray_folder.py --model ViT-B-16 --rounds 2       # random weights: the real compute

Copies `--images` CamVid test photos into a folder and segments them zero-shot (CamVid's 11 classes,
default outputs) into a fresh folder per run: locally (`run_folder`, torch on every CPU it may use) and on
a local Ray instance with `--cpus` CPUs, one actor (model copy, one torch thread) per CPU. The Ray
instance starts once, before the rounds (its start is printed apart); each Ray run includes starting
its actors and building their models, as every `rns segment --ray` does. Rounds alternate local and Ray.

Printed per mode, medians over rounds: images/s (images / wall time of the whole call) and the seconds
until the first image finished (for Ray: starting the actors and building their models). Every run must
finish every image. The machine's load is printed too: on a shared machine the figures move with it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from rns.run.runner import run_folder
from rns.segment.pipeline import SegmentOptions, build_segmenter

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from shared_data import CAMVID  # noqa: E402  (one variable for every data benchmark: RNS_SHARED, else ../shared)


class Clock:
    """An observer that remembers when each image finished."""

    def __init__(self) -> None:
        self.finished: list[float] = []

    def on_start(self, total: int, out_dir: Path) -> None:
        self.finished.clear()

    def on_image(self, event) -> None:
        self.finished.append(time.perf_counter())

    def on_end(self, report) -> None:
        pass


def timed(run, images: int) -> tuple[float, float]:
    """(images/s over the whole call, seconds until the first image finished) of one run."""
    clock = Clock()
    start = time.perf_counter()
    report = run(clock)
    wall = time.perf_counter() - start
    if report.done != images:
        raise SystemExit(f"run incomplete: {report.to_json()['counts']}")
    return images / wall, min(clock.finished) - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--model", default="rns-tiny-test")
    parser.add_argument("--pretrained", default="random")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray instance (and actors)")
    parser.add_argument("--data", type=Path, default=CAMVID)
    args = parser.parse_args()
    photos = sorted((args.data / "test" / "images").glob("*.jpg"))[: args.images]
    if len(photos) < args.images:
        print(f"need {args.images} CamVid test images under {args.data}; found {len(photos)}")
        return 2
    work = Path(tempfile.mkdtemp(prefix="rns-ray-bench-"))
    os.environ.setdefault("RNS_CACHE", str(work / "cache"))
    folder = work / "photos"
    folder.mkdir()
    for photo in photos:
        shutil.copy(photo, folder / photo.name)
    classes = [c for c in (args.data / "classes.txt").read_text().split("\n") if c.strip()]
    segmenter = build_segmenter(classes, model=args.model, pretrained=args.pretrained, device="cpu",
                                options=SegmentOptions(zero_shot=True))  # fmt: skip
    from rns.run.ray_run import run_folder_on_ray
    from rns.run.ray_session import ray_connection

    runs = {
        "local": lambda out, clock: run_folder(segmenter, [folder], out, observer=clock),
        "ray": lambda out, clock: run_folder_on_ray(segmenter, [folder], out, observer=clock,
                                                    workers=args.cpus),  # fmt: skip
    }
    started = time.perf_counter()
    with ray_connection(None, num_cpus=args.cpus):
        ray_start = time.perf_counter() - started
        figures: dict[str, list[tuple[float, float]]] = {"local": [], "ray": []}
        for round_ in range(args.rounds):
            for mode, run in runs.items():
                out = work / f"out-{mode}-{round_}"
                result = timed(lambda clock, run=run, out=out: run(out, clock), len(photos))
                figures[mode].append(result)
                print(f"round {round_ + 1} {mode}: {result[0]:.2f} img/s, first image after "
                      f"{result[1]:.1f} s (load {os.getloadavg()[0]:.1f})", flush=True)  # fmt: skip
    print(f"\n{len(photos)} CamVid images, {args.model} ({args.pretrained}), zero-shot, CPU, torch "
          f"{torch.get_num_threads()} threads locally; local Ray instance with {args.cpus} CPUs and "
          f"{args.cpus} actors (started once, {ray_start:.1f} s); {args.rounds} rounds")  # fmt: skip
    print("mode    img/s  first image (s)   (medians)")
    for mode, values in figures.items():
        rate = statistics.median(v[0] for v in values)
        first = statistics.median(v[1] for v in values)
        print(f"{mode:6} {rate:6.2f}  {first:15.1f}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
