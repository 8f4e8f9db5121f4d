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
    per_image = []
    start = time.perf_counter()
    for path in images:
        t0 = time.perf_counter()
        backbone.dense_features(load_image(path))
        per_image.append(time.perf_counter() - t0)
    return time.perf_counter() - start, per_image


def folder_run(segmenter, images: list[Path]) -> float:
    out = Path(tempfile.mkdtemp(prefix="rns-throughput-"))
    start = time.perf_counter()
    report = run_folder(segmenter, images, out, observer=SilentProgress())
    elapsed = time.perf_counter() - start
    assert report.done == len(images), report.to_json()
    return elapsed


def main() -> None:
    parser = timing_parser(__doc__)
    parser.add_argument("--images", type=int, default=30, help="how many CamVid test images")
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
    base_total, base_each = backbone_only(backbone, test.images)
    print(f"\n{len(test.images)} CamVid test images, 480x360\n")
    print("| run | seconds | images/s | time / backbone-only |\n|---|---|---|---|")
    print(f"| backbone forward alone | {base_total:.1f} | {len(test.images) / base_total:.2f} | 1.00 |")
    for name, segmenter in segmenters.items():
        elapsed = folder_run(segmenter, test.images)
        print(f"| folder run, {name} | {elapsed:.1f} | {len(test.images) / elapsed:.2f} | "
              f"{elapsed / base_total:.2f} |")
    print(f"\nbackbone forward median {statistics.median(base_each) * 1000:.0f} ms per image")


if __name__ == "__main__":
    main()
