"""Per-stage time of segmenting one image, medians over CamVid test images, in one run.

    python benchmarks/stages.py [--images 20] [--solver fast|adamw] [--model ViT-B-16] [--checkpoint FILE]

Stages: backbone forward (dense features), text encoding (all class prompts, uncached), retrieval from a
support memory (B=5 per class from train), head fit, prediction, upsampling, and the whole image. The head
fit's share of the backbone forward is the figure issue 7 targets (<= 10% on this CPU at 448 px).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from camvid import FeatureCache, build_memory, class_names, draw_supports, load_split  # noqa: E402
from timing_backbone import open_timing_backbone, timing_parser  # noqa: E402

from rns.adapt import AdaptConfig  # noqa: E402
from rns.imageio import load_image  # noqa: E402
from rns.pipeline import Segmenter, SegmentOptions  # noqa: E402
from rns.requested_classes import background_words  # noqa: E402


def main() -> None:
    parser = timing_parser(__doc__)
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--shots", type=int, default=5)
    parser.add_argument("--solver", default=None, help="head-fit solver (default: the library default)")
    args = parser.parse_args()
    backbone = open_timing_backbone(args)
    names = class_names(args.data)
    test = load_split(args.data, "test", args.images)
    train = load_split(args.data, "train")

    start = time.perf_counter()
    prompts = list(names) + background_words(names)
    backbone.encode_text(prompts)
    text_seconds = time.perf_counter() - start

    chosen = draw_supports(train, len(names), args.shots, 0)
    memory = build_memory(FeatureCache(backbone), train, chosen, names)
    config = AdaptConfig() if args.solver is None else AdaptConfig(solver=args.solver)
    segmenter = Segmenter(backbone, names, memory=memory, options=SegmentOptions(adapt=config))
    segmenter.segment(load_image(test.images[0]))  # warm-up
    stages: dict[str, list[float]] = {}
    for path in test.images:
        result = segmenter.segment(load_image(path))
        for stage, seconds in result.timings.items():
            stages.setdefault(stage, []).append(seconds)

    print(f"\nmemory: {memory.stats()['n_prototypes']} prototypes (B={args.shots} per class); "
          f"solver: {config.solver}; {len(test.images)} images, 480x360 -> 448 px short side\n")
    print("| stage | median ms |\n|---|---|")
    print(f"| text encoding ({len(prompts)} prompts x 80 templates, once per run) | "
          f"{1000 * text_seconds:.0f} |")
    for stage, values in stages.items():
        print(f"| {stage} | {1000 * statistics.median(values):.1f} |")
    fit, forward = statistics.median(stages["adapt_head_fit"]), statistics.median(stages["backbone"])
    print(f"\nhead fit / backbone forward = {100 * fit / forward:.1f}% (medians, this run)")


if __name__ == "__main__":
    main()
