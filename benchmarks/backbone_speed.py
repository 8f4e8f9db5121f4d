"""Images per second of each backbone's dense features on the same photos, one run, this machine.

    python benchmarks/backbone_speed.py                          # lite0, lite2, ViT-B-16 on 20 CamVid photos
    python benchmarks/backbone_speed.py --models efficientnet-lite0,ViT-B-16 --images 10 --threads 2

ViT-B-16 runs with random weights when its real ones are not cached (the time does not depend on the
values; its line says so). Each model first runs one warm-up image, not counted. Test-time features only
(`dense_features`): the backbone part of `rns segment`, with the reference's sliding window for CLIP.
CPU seconds (all threads of the process) are printed beside wall time: on a shared machine they move far
less with the other load than wall time does.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from camvid import DEFAULT_DATA, load_split  # noqa: E402

from rns.backbone import build_backbone  # noqa: E402
from rns.errors import RnsError  # noqa: E402
from rns.io.imageio import load_image  # noqa: E402


def _build(model: str, device: str):
    try:
        return build_backbone(model, device=device)
    except RnsError:
        return build_backbone(model, "random", device=device)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--models", default="efficientnet-lite0,efficientnet-lite2,ViT-B-16")
    parser.add_argument("--images", type=int, default=20, help="first N CamVid test photos")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    photos = [load_image(path) for path in load_split(args.data, "test", args.images).images]
    print(f"{len(photos)} CamVid test photos (480 x 360), {args.threads} torch threads, device {args.device}")
    print("| model | weights | images/s (wall) | s/image (wall) | CPU s/image |\n|---|---|---|---|---|")
    for model in [m.strip() for m in args.models.split(",") if m.strip()]:
        backbone = _build(model, args.device)
        backbone.dense_features(photos[0])
        start, cpu_start = time.perf_counter(), time.process_time()
        for photo in photos:
            backbone.dense_features(photo)
        seconds = (time.perf_counter() - start) / len(photos)
        cpu = (time.process_time() - cpu_start) / len(photos)
        print(f"| {model} | {backbone.weights_label} | {1 / seconds:.2f} | {seconds:.3f} | {cpu:.3f} |",
              flush=True)


if __name__ == "__main__":
    main()
