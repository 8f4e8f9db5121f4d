"""Per-stage time of segmenting one image, quiet and under load, medians over CamVid test images, one run.

    python benchmarks/stages.py [--images 20] [--busy 2] [--solver fast|adamw] [--model ViT-B-16]

Stages: backbone forward (dense features), text encoding (all class prompts, uncached), retrieval from a
support memory (B=5 per class from train), head fit, prediction, upsampling, and the whole image.

`--busy N` (issue 24) starts N CPU-bound processes of the script's own (`busy.BusyCores`: bounded in
time, stopped at the end, also on Ctrl-C) and segments every image twice, interleaved: once with them
paused (the "quiet" column) and once with them running ("busy"), so both columns come from one run on one
machine. Each column gives each stage's median and its ratio to that column's backbone median. The
1-minute load average is printed with the figures. `--busy 0` (the default) prints the quiet column only.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from busy import BusyCores, load_average, loaded  # noqa: E402
from camvid import FeatureCache, build_memory, class_names, draw_supports, load_split  # noqa: E402
from timing_backbone import open_timing_backbone, timing_parser  # noqa: E402

from rns.adapt import AdaptConfig  # noqa: E402
from rns.io.imageio import load_image  # noqa: E402
from rns.segment.pipeline import Segmenter, SegmentOptions  # noqa: E402
from rns.segment.requested_classes import background_words  # noqa: E402


def main() -> None:
    parser = timing_parser(__doc__)
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--shots", type=int, default=5)
    parser.add_argument("--solver", default=None, help="head-fit solver (default: the library default)")
    parser.add_argument("--busy", type=int, default=0, help="CPU-bound background processes for the busy "
                        "column (0: quiet column only)")
    parser.add_argument("--busy-limit", type=float, default=3600.0,
                        help="seconds after which the background processes exit by themselves")
    args = parser.parse_args()
    backbone = open_timing_backbone(args)
    names = class_names(args.data)
    test = load_split(args.data, "test", args.images)
    train = load_split(args.data, "train")

    start = time.perf_counter()
    prompts = list(names) + background_words(names)
    if backbone.has_text:  # an image-only backbone (EfficientNet-Lite) segments from the examples alone
        backbone.encode_text(prompts)
    text_seconds = time.perf_counter() - start

    chosen = draw_supports(train, len(names), args.shots, 0)
    memory = build_memory(FeatureCache(backbone), train, chosen, names)
    config = AdaptConfig() if args.solver is None else AdaptConfig(solver=args.solver)
    segmenter = Segmenter(backbone, names, memory=memory, options=SegmentOptions(adapt=config))
    columns = ["quiet"] + (["busy"] if args.busy else [])
    stages: dict[str, dict[str, list[float]]] = {column: {} for column in columns}
    loads: dict[str, list[str]] = {column: [] for column in columns}
    with BusyCores(args.busy, args.busy_limit) as busy:
        busy.pause()
        for column in columns:  # warm-up
            with loaded(busy if column == "busy" else None):
                segmenter.segment(load_image(test.images[0]))
        for path in test.images:
            image = load_image(path)
            for column in columns:
                with loaded(busy if column == "busy" else None):
                    result = segmenter.segment(image)
                    loads[column].append(load_average())
                for stage, seconds in result.timings.items():
                    stages[column].setdefault(stage, []).append(seconds)

    print(f"\nmemory: {memory.stats()['n_prototypes']} prototypes (B={args.shots} per class); "
          f"solver: {config.solver}; {len(test.images)} images, 480x360 -> 448 px short side; "
          f"busy: {args.busy} background process(es)\n")
    if backbone.has_text:
        print(f"text encoding ({len(prompts)} prompts x 80 templates, once per run): "
              f"{1000 * text_seconds:.0f} ms\n")
    else:
        print(f"no text encoder ({backbone.spec.model}): the no-text setting, no fused anchors\n")
    medians = {column: {stage: statistics.median(values) for stage, values in stages[column].items()}
               for column in columns}
    header = " | ".join(f"{column} median ms | {column} / backbone" for column in columns)
    print(f"| stage | {header} |\n|---|" + "---|---|" * len(columns))
    for stage in medians["quiet"]:
        cells = " | ".join(f"{1000 * medians[c][stage]:.1f} | "
                           f"{medians[c][stage] / medians[c]['backbone']:.3f}" for c in columns)
        print(f"| {stage} | {cells} |")
    for column in columns:
        fit, forward = medians[column]["adapt_head_fit"], medians[column]["backbone"]
        whole = medians[column]["total"]
        print(f"{column}: head fit / backbone = {100 * fit / forward:.1f}%, whole image / backbone = "
              f"{whole / forward:.2f}x (medians, this run); load average "
              f"{min(loads[column])}-{max(loads[column])}")


if __name__ == "__main__":
    main()
