"""Images/s per `--batch-size`: the backbone alone, segmentation end to end, and a whole folder run.

    python benchmarks/throughput.py [--images 12] [--batch-sizes 1,2,4,8,auto] [--rounds 3]
                                    [--model ViT-B-16] [--pretrained random] [--device auto] [--no-folder]

For every batch size (images per backbone call, `rns segment --batch-size`), on the same CamVid test
photos decoded beforehand:

- backbone alone: `dense_features` (batch 1) or `dense_features_many` on groups of that many images, nothing
  else: the ceiling for the rest;
- segment: `Segmenter.segment` / `segment_many` with a support memory of one example per class (RNS:
  backbone, retrieval, anchors, head fit, upsampling to labels), no decoding or writing;
- folder run: `run_folder(..., batch_size=...)` into a fresh folder, as `rns segment` does it (decoding in
  loader threads, default outputs written by the writer thread); left out with --no-folder.

Medians over `--rounds` interleaved rounds (each round times every batch size once, so drifting machine
load touches all alike); each batch size is warmed up once first (a GPU tunes kernels per shape). Times
on CUDA are taken after synchronising. The default model is ViT-B-16 with random weights: compute does not
depend on the weights' values. Issue 5's target (folder run within 1.5x of the backbone) is the last
ratio column at batch 1. The last column is the share of pixels labelled as at the smallest batch size:
1.000000 on a CPU (the test suite checks bit-identical outputs there); on a GPU, other batch shapes may
round differently in the last bits, and this column shows whether any label moved.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from camvid import FeatureCache, build_memory, class_names, draw_supports, load_split  # noqa: E402
from timing_backbone import open_timing_backbone, timing_parser  # noqa: E402

from rns.io.imageio import load_image  # noqa: E402
from rns.run.batch_size import parse_batch_size, resolve_batch_size  # noqa: E402
from rns.run.progress import SilentProgress  # noqa: E402
from rns.run.runner import run_folder  # noqa: E402
from rns.segment.pipeline import Segmenter, SegmentOptions  # noqa: E402
from rns.timing import device_time  # noqa: E402


def groups(items: list, size: int) -> list[list]:
    return [items[first:first + size] for first in range(0, len(items), size)]


def backbone_alone(backbone, pictures: list, batch: int) -> float:
    """Seconds for the dense features of every picture, `batch` pictures per call."""
    start = device_time(backbone.device)
    for group in groups(pictures, batch):
        if batch == 1:
            backbone.dense_features(group[0])
        else:
            backbone.dense_features_many(group)
    return device_time(backbone.device) - start


def segment_all(segmenter: Segmenter, pictures: list, batch: int, labels: dict | None = None) -> float:
    """Seconds to segment every picture to labels (no decoding, no writing), `batch` per call.

    The label maps are kept in `labels[batch]`, to check that batching changed none of them.
    """
    results = []
    start = device_time(segmenter.backbone.device)
    for group in groups(pictures, batch):
        results += [segmenter.segment(group[0])] if batch == 1 else segmenter.segment_many(group)
    elapsed = device_time(segmenter.backbone.device) - start
    if labels is not None:
        labels[batch] = [seg.labels for seg in results]
    return elapsed


def agreement(labels: dict[int, list], batch: int) -> str:
    """Share of pixels labelled as at the smallest batch size (1.0 when batching changed nothing)."""
    reference = labels[min(labels)]
    same = sum(int(np.sum(a == b)) for a, b in zip(reference, labels[batch], strict=True))
    return f"{same / sum(a.size for a in reference):.6f}"


def folder_run(segmenter: Segmenter, paths: list[Path], batch: int) -> float:
    """Seconds of a whole `rns segment` folder run (default outputs) into a fresh folder."""
    out = Path(tempfile.mkdtemp(prefix="rns-throughput-"))
    start = device_time(segmenter.backbone.device)
    report = run_folder(segmenter, paths, out, observer=SilentProgress(), batch_size=batch)
    elapsed = device_time(segmenter.backbone.device) - start
    assert report.done == len(paths), report.to_json()
    return elapsed


def main() -> None:
    parser = timing_parser(__doc__)
    parser.set_defaults(model="ViT-B-16", pretrained="random")
    parser.add_argument("--images", type=int, default=12, help="how many CamVid test images")
    parser.add_argument("--batch-sizes", default="1,2,4,8,auto", help="comma-separated, each N or auto")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved repetitions of every measurement")
    parser.add_argument("--no-folder", action="store_true", help="skip the folder-run column (faster)")
    args = parser.parse_args()
    backbone = open_timing_backbone(args)
    names = class_names(args.data)
    test = load_split(args.data, "test", args.images)
    train = load_split(args.data, "train")
    memory = build_memory(FeatureCache(backbone), train, draw_supports(train, len(names), 1, 0), names)
    segmenter = Segmenter(backbone, names, memory=memory, options=SegmentOptions())
    pictures = [load_image(path) for path in test.images]
    asked = [parse_batch_size(value) for value in args.batch_sizes.split(",")]
    sizes = {f"{value} (= {resolve_batch_size(value, segmenter)})" if value == "auto" else str(value):
             resolve_batch_size(value, segmenter) for value in asked}  # fmt: skip
    for batch in sorted(set(sizes.values())):  # warm-up: first calls of a shape allocate and tune
        segment_all(segmenter, pictures[:batch], batch)
    columns = ["backbone alone", "segment"] + ([] if args.no_folder else ["folder run"])
    seconds: dict[tuple[int, str], list[float]] = {}
    labels: dict[int, list] = {}  # the last round's label maps per batch size
    runs = {"backbone alone": lambda batch: backbone_alone(backbone, pictures, batch),
            "segment": lambda batch: segment_all(segmenter, pictures, batch, labels),
            "folder run": lambda batch: folder_run(segmenter, test.images, batch)}
    for _ in range(args.rounds):
        for batch in sorted(set(sizes.values())):
            for column in columns:
                seconds.setdefault((batch, column), []).append(runs[column](batch))
    count = len(pictures)
    print(f"\n{count} CamVid test images (480x360), RNS with {memory.n_prototypes} prototypes, "
          f"median of {args.rounds} interleaved rounds; images/s\n")
    header = " | ".join(f"{column} img/s" for column in columns)
    ratios = " | segment / backbone time" + ("" if args.no_folder else " | folder run / backbone time")
    print(f"| batch size | {header}{ratios} | pixels as at batch {min(labels)} |\n|---|"
          + "---|" * (2 * len(columns)))
    for label, batch in sizes.items():
        median = {column: statistics.median(seconds[batch, column]) for column in columns}
        rates = " | ".join(f"{count / median[column]:.2f}" for column in columns)
        base = median["backbone alone"]
        times = " | ".join(f"{median[column] / base:.2f}" for column in columns[1:])
        print(f"| {label} | {rates} | {times} | {agreement(labels, batch)} |")


if __name__ == "__main__":
    main()
