"""Folder-run throughput against the backbone forward alone, on the same CamVid test images, in one run.

    python benchmarks/throughput.py [--images 30] [--model ViT-B-16] [--checkpoint FILE]

Prints images/s of (a) the backbone alone (decode + dense features, nothing else) and (b) a full
`rns segment` folder run (decode in background threads, features, retrieval, head fit, upsampling, writing
labels + overlay + summary), zero-shot and with a support memory, and the ratio of their times.
Target (issue 5): the folder run within 1.5x of backbone-only time, without SAM.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from camvid import FeatureCache, build_memory, class_names, draw_supports, load_split  # noqa: E402
from timing_backbone import open_timing_backbone, timing_parser  # noqa: E402

from rns.imageio import load_image  # noqa: E402
from rns.pipeline import Segmenter, SegmentOptions  # noqa: E402
from rns.progress import SilentProgress  # noqa: E402
from rns.runner import run_folder  # noqa: E402


def backbone_only(backbone, images: list[Path]) -> tuple[float, list[float]]:
    """Decode and dense features of every image, one after another: the floor a folder run can reach."""
    per_image = []
    start = time.perf_counter()
    for path in images:
        t0 = time.perf_counter()
        backbone.dense_features(load_image(path))
        per_image.append(time.perf_counter() - t0)
    return time.perf_counter() - start, per_image


def folder_run(segmenter, images: list[Path]) -> float:
    """A whole `rns segment` run into a fresh folder (default outputs), as the CLI does it."""
    out = Path(tempfile.mkdtemp(prefix="rns-throughput-"))
    start = time.perf_counter()
    report = run_folder(segmenter, images, out, observer=SilentProgress())
    elapsed = time.perf_counter() - start
    assert report.done == len(images), report.to_json()
    return elapsed


def main() -> None:
    parser = timing_parser(__doc__)
    parser.add_argument("--images", type=int, default=12, help="how many CamVid test images")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved repetitions of every run")
    args = parser.parse_args()
    backbone = open_timing_backbone(args)
    names = class_names(args.data)
    test = load_split(args.data, "test", args.images)
    train = load_split(args.data, "train")
    memory = build_memory(FeatureCache(backbone), train, draw_supports(train, len(names), 1, 0), names)
    segmenters = {
        "zero-shot": Segmenter(backbone, names, options=SegmentOptions(zero_shot=True)),
        "RNS (B=1 memory)": Segmenter(backbone, names, memory=memory),
    }
    backbone.dense_features(load_image(test.images[0]))  # warm-up: first call allocates
    # Rounds interleave the runs, so drifting machine load touches each alike; medians over rounds.
    seconds: dict[str, list[float]] = {"backbone forward alone": []}
    for _ in range(args.rounds):
        seconds["backbone forward alone"].append(backbone_only(backbone, test.images)[0])
        for name, segmenter in segmenters.items():
            seconds.setdefault(f"folder run, {name}", []).append(folder_run(segmenter, test.images))
    base = statistics.median(seconds["backbone forward alone"])
    print(f"\n{len(test.images)} CamVid test images (480x360), median of {args.rounds} interleaved rounds\n")
    print("| run | seconds | images/s | time / backbone-only |\n|---|---|---|---|")
    for name, values in seconds.items():
        elapsed = statistics.median(values)
        print(f"| {name} | {elapsed:.1f} | {len(test.images) / elapsed:.2f} | {elapsed / base:.2f} |")

if __name__ == "__main__":
    main()
