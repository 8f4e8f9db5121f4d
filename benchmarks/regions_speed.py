"""Time region proposals and region pooling per image (prints figures; asserts nothing).

    python benchmarks/regions_speed.py [IMAGE_DIR] [--limit N] [--segments N] [--threads N]

Defaults to the CamVid test images. SAM is timed only when RNS_SAM_CHECKPOINT names a checkpoint.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from rns.regions import SAM_CHECKPOINT_ENV, SuperpixelProposer, build_region_proposer, pool_regions

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from shared_data import CAMVID  # noqa: E402  (one variable for every data benchmark: RNS_SHARED, else ../shared)

DEFAULT_DIR = CAMVID / "test" / "images"


def _time(function, *args) -> tuple[float, object]:
    start = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="?", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--limit", type=int, default=30)
    parser.add_argument("--segments", type=int, default=200)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    paths = sorted(p for p in args.images.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    paths = paths[: args.limit]
    images = [Image.open(p).convert("RGB") for p in paths]
    print(f"{len(images)} images from {args.images}, size of the first {images[0].size}, "
          f"torch threads {torch.get_num_threads()}")

    proposer = SuperpixelProposer(n_segments=args.segments)
    proposer.propose(images[0])  # warm-up
    times, counts, pool_times = [], [], []
    for image in images:
        seconds, region_map = _time(proposer.propose, image)
        times.append(seconds)
        counts.append(int(region_map.max()) + 1)
        grid = (28, round(28 * image.width / image.height))  # a 448-px short side at 16-px patches
        features = torch.nn.functional.normalize(torch.randn(*grid, 512), dim=-1)
        pool_seconds, _ = _time(pool_regions, features, region_map)
        pool_times.append(pool_seconds)
    print(f"superpixels (n_segments={args.segments}): median {statistics.median(times) * 1000:.0f} ms, "
          f"max {max(times) * 1000:.0f} ms per image; regions median {statistics.median(counts)}, "
          f"range {min(counts)}-{max(counts)}")
    pool_ms = statistics.median(pool_times) * 1000
    print(f"pool_regions ({grid[0]}x{grid[1]}x512 grid): median {pool_ms:.1f} ms")

    big = Image.fromarray(np.asarray(images[0].resize((1000, 750))))
    seconds, region_map = _time(proposer.propose, big)
    pool_seconds, _ = _time(pool_regions, torch.randn(28, 38, 512), region_map)
    print(f"1000x750: superpixels {seconds * 1000:.0f} ms ({int(region_map.max()) + 1} regions), "
          f"pool_regions {pool_seconds * 1000:.1f} ms")

    if os.environ.get(SAM_CHECKPOINT_ENV):
        sam = build_region_proposer("sam", cache=False)
        seconds, region_map = _time(sam.propose, images[0])
        print(f"SAM ({sam.settings_key()}): {seconds:.1f} s first image, {int(region_map.max()) + 1} regions")
    else:
        print(f"SAM: not timed ({SAM_CHECKPOINT_ENV} unset)")


if __name__ == "__main__":
    main()
