"""Accuracy on CamVid: zero-shot per feature variant, few-shot RNS against baselines and ablations, regions.

Support images come from `train`, queries from `test`; mIoU over the 11 classes, pixels marked 255
ignored. Every method runs on the same cached dense features, so the tables compare methods, not noise.

    python benchmarks/accuracy.py                        # real weights (open_clip cache or --checkpoint)
    python benchmarks/accuracy.py --smoke                # wiring run on the tiny random model (not accuracy)
    python benchmarks/accuracy.py --tables fewshot --shots 1,5 --seeds 0,1,2 --queries 100
    python benchmarks/accuracy.py --model efficientnet-lite0     # no text: the notext table
    python benchmarks/accuracy.py --model efficientnet-lite0 --split val --short-side 360  # settings on val

Without real weights the script says so and prints no number that looks like accuracy.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from camvid import (  # noqa: E402
    DEFAULT_DATA,
    FeatureCache,
    banner,
    build_memory,
    class_names,
    draw_supports,
    load_split,
    open_backbone,
)
from notext_table import run_notext_table  # noqa: E402

from rns.adapt import AdaptConfig  # noqa: E402
from rns.backbone import VARIANTS, build_backbone  # noqa: E402
from rns.evaluate.evaluation import ConfusionMatrix  # noqa: E402
from rns.io.imageio import load_image, load_mask  # noqa: E402
from rns.segment.pipeline import Segmenter, SegmentOptions  # noqa: E402
from rns.segment.upsample import upsample_probabilities  # noqa: E402

SINGLE_LAMBDA = 0.6


@dataclass
class Method:
    """One row of the few-shot table: how to segment given a memory (None: zero-shot)."""

    name: str
    options: SegmentOptions | None = None  # None: the nearest-prototype baseline
    needs_memory: bool = True


@dataclass
class Outcome:
    miou: float
    seconds: dict[str, list[float]] = field(default_factory=dict)


def few_shot_methods(base: AdaptConfig, regions: str = "none") -> list[Method]:
    def rns(**changes) -> SegmentOptions:
        return SegmentOptions(background=False, regions=regions, adapt=_replace(base, **changes))

    return [
        Method("zero-shot", SegmentOptions(zero_shot=True, background=False, regions=regions), False),
        Method("nearest prototype (k=1)", None),
        Method("RNS", rns()),
        Method("RNS, no text", rns(use_text=False)),
        Method("RNS, no relevance weights", rns(use_relevance=False)),
        Method(f"RNS, single lambda ({SINGLE_LAMBDA})", rns(lambdas=(SINGLE_LAMBDA,))),
        Method("RNS, no retrieval (all supports)", rns(use_retrieval=False)),
        Method("RNS, AdamW 700 steps (reference)", rns(solver="adamw", steps=700)),
    ]


def _replace(config: AdaptConfig, **changes) -> AdaptConfig:
    from dataclasses import replace

    return replace(config, **changes)


def nearest_prototype_labels(memory, features: torch.Tensor, geometry, names: list[str]) -> np.ndarray:
    """Baseline: every patch takes the class of its single nearest stored prototype."""
    gh, gw, dim = features.shape
    result = memory.search(features.reshape(-1, dim).cpu().numpy(), 1)
    _, memory_ids = memory.rows(result.rows[:, 0])
    by_id = {info.id: names.index(info.name) for info in memory.classes()}
    labels = torch.tensor([by_id[int(i)] for i in memory_ids])
    one_hot = torch.nn.functional.one_hot(labels, len(names)).float().reshape(gh, gw, -1)
    return upsample_probabilities(one_hot, geometry.original, geometry=geometry)[0]


def run_method(
    method: Method, backbone, cache: FeatureCache, queries, names, memory, proposer=None
) -> Outcome:
    matrix = ConfusionMatrix(len(names))
    seconds: dict[str, list[float]] = {}
    segmenter = None
    if method.options is not None:
        segmenter = Segmenter(backbone, names, memory=memory if method.needs_memory else None,
                              options=method.options, region_proposer=proposer)  # fmt: skip
    for image_path, mask_path in zip(queries.images, queries.masks, strict=True):
        truth = load_mask(mask_path)
        features = cache(image_path)
        if segmenter is None:
            start = time.perf_counter()
            geometry = backbone.geometry(truth.shape[1], truth.shape[0])
            predicted = nearest_prototype_labels(memory, features, geometry, names)
            seconds.setdefault("total", []).append(time.perf_counter() - start)
        else:
            image = load_image(image_path)
            result = segmenter.segment_features(image, features)
            predicted = result.labels
            for stage, value in result.timings.items():
                seconds.setdefault(stage, []).append(value)
        matrix.update(truth, predicted)
    return Outcome(100.0 * matrix.scores(names).miou, seconds)


def table_zero_shot(args, names, queries) -> None:
    print(f"\n## Zero-shot mIoU per dense-feature variant ({len(queries.images)} test images, 11 classes)")
    print("| variant | mIoU | backbone s/img (median) |\n|---|---|---|")
    for variant in args.variants:
        if args.smoke:
            from rns.backbone import TINY_TEST_MODEL

            backbone = build_backbone(TINY_TEST_MODEL, "random", variant=variant, device=args.device)
        else:
            backbone = build_backbone(args.model, args.pretrained, args.checkpoint, variant, args.device)
        cache = FeatureCache(backbone)
        method = Method("zero-shot", SegmentOptions(zero_shot=True, background=False), False)
        outcome = run_method(method, backbone, cache, queries, names, None)
        print(f"| {variant} | {outcome.miou:.1f} | {statistics.median(cache.seconds.values()):.3f} |")


def table_few_shot(args, backbone, names, queries, train) -> None:
    cache = FeatureCache(backbone)
    methods = few_shot_methods(AdaptConfig())
    results: dict[str, dict[int, list[float]]] = {m.name: {b: [] for b in args.shots} for m in methods}
    head_fit: list[float] = []
    for shots in args.shots:
        for seed in args.seeds:
            chosen = draw_supports(train, len(names), shots, seed)
            memory = build_memory(cache, train, chosen, names)
            for method in methods:
                outcome = run_method(method, backbone, cache, queries, names, memory)
                results[method.name][shots].append(outcome.miou)
                if method.name == "RNS":
                    head_fit.extend(outcome.seconds.get("adapt_head_fit", []))
            print(f"  B={shots} seed={seed}: {len(chosen)} support images", file=sys.stderr)
    seeds = ",".join(map(str, args.seeds))
    print(f"\n## Few-shot mIoU on CamVid test ({len(queries.images)} images), support from train, "
          f"B examples per class, mean ± std over seeds {seeds}")
    print("| method | " + " | ".join(f"B={b}" for b in args.shots) + " |")
    print("|---|" + "---|" * len(args.shots))
    for method in methods:
        cells = []
        for shots in args.shots:
            values = results[method.name][shots]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.mean(values):.1f} ± {spread:.1f}")
        print(f"| {method.name} | " + " | ".join(cells) + " |")
    query_seconds = [cache.seconds[p] for p in queries.images if p in cache.seconds]
    if head_fit and query_seconds:
        fit, forward = statistics.median(head_fit), statistics.median(query_seconds)
        print(f"\nhead fit (RNS default solver) median {1000 * fit:.1f} ms per image; backbone forward "
              f"median {1000 * forward:.1f} ms per image; ratio {100 * fit / forward:.1f}% "
              "(this CPU, one run)")


def table_regions(args, backbone, names, queries, train) -> None:
    from rns.regions import build_region_proposer

    cache = FeatureCache(backbone)
    kinds = ["none", "superpixels"] + (["sam"] if args.sam_checkpoint else [])
    shots = ", ".join(map(str, args.region_shots))
    print(f"\n## Patches vs regions ({len(queries.images)} test images; RNS at B = {shots}, "
          f"seed {args.seeds[0]}); seconds per image exclude the backbone")
    header = ["zero-shot"] + [f"RNS B={b}" for b in args.region_shots]
    print("| regions | " + " | ".join(header) + " | s/img (regions + adapt) |")
    print("|---|" + "---|" * (len(header) + 1))
    memories = {b: build_memory(cache, train, draw_supports(train, len(names), b, args.seeds[0]), names)
                for b in args.region_shots}  # fmt: skip
    for kind in kinds:
        proposer = None if kind == "none" else build_region_proposer(
            kind, sam_checkpoint=args.sam_checkpoint, device=str(backbone.device))
        cells, per_image = [], []
        zero = Method("zero-shot", SegmentOptions(zero_shot=True, background=False, regions=kind), False)
        outcome = run_method(zero, backbone, cache, queries, names, None, proposer)
        cells.append(f"{outcome.miou:.1f}")
        for shots in args.region_shots:
            method = Method("RNS", SegmentOptions(background=False, regions=kind))
            outcome = run_method(method, backbone, cache, queries, names, memories[shots], proposer)
            cells.append(f"{outcome.miou:.1f}")
            per_image.extend(outcome.seconds.get("total", []))
        print(f"| {kind} | " + " | ".join(cells) + f" | {statistics.median(per_image):.2f} |")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="CamVid folder (with train/ test/)")
    parser.add_argument("--model", default=None)
    parser.add_argument("--pretrained", default=None)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--variant", default=None, help="variant for the few-shot and region tables")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--smoke", action="store_true", help="tiny random model: wiring only, not accuracy")
    parser.add_argument("--tables", default=None,
                        help="default zero-shot,fewshot,regions; notext for a backbone without text")
    parser.add_argument("--split", default="test", choices=("test", "val"),
                        help="queries from this split (choose settings on val, report test once)")
    parser.add_argument("--every", type=int, default=1, help="every n-th query image of the split")
    parser.add_argument("--short-side", type=int, default=None, help="EfficientNet-Lite input short side")
    parser.add_argument("--grid-stride", type=int, default=None, help="EfficientNet-Lite feature grid stride")
    parser.add_argument("--notext-regions", default="superpixels", help="'none' leaves out the regions row")
    parser.add_argument("--anchor-weight", type=float, default=None,
                        help="notext table: add an RNS row with this AdaptConfig.anchor_weight")
    parser.add_argument("--rns-k", default=None,
                        help="notext table: add RNS rows retrieving these k per patch (e.g. 8,16; the vote "
                             "keeps AdaptConfig.k)")
    parser.add_argument("--rns-set", action="append", default=None,
                        help="notext table: add an RNS row with these AdaptConfig changes, e.g. "
                             "'steps=2000 lr=0.01' (repeatable; for choosing settings on val)")
    parser.add_argument("--patch-knn", action="store_true",
                        help="notext table: add a kNN vote over every support patch (not the memory's rows)")
    parser.add_argument("--feature-cache", type=Path, default=None,
                        help="notext table: keep dense and support features on disk in DIR (per backbone "
                             "fingerprint), so each photo's backbone pass runs once per model")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--shots", default="1,5,20")
    parser.add_argument("--region-shots", default="1,5")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--queries", type=int, default=None, help="first N test images (default: all 233)")
    parser.add_argument("--sam-checkpoint", default=None, help="adds a SAM row to the regions table")
    args = parser.parse_args(argv)
    args.tables = [t.strip() for t in (args.tables or "").split(",") if t.strip()]
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    args.shots = [int(b) for b in args.shots.split(",")]
    args.region_shots = [int(b) for b in args.region_shots.split(",")]
    args.seeds = [int(s) for s in args.seeds.split(",")]
    args.rns_k = [int(k) for k in args.rns_k.split(",")] if args.rns_k else []
    if args.smoke and args.queries is None:
        args.queries = 12
    return args


def _lite_with_input(backbone, args):
    """The same EfficientNet-Lite with another input size or grid (for choosing them on the val split)."""
    from rns.backbone.efficientnet import LiteInput, build_efficientnet_lite

    base = LiteInput()
    settings = LiteInput(short_side=args.short_side or base.short_side,
                         grid_stride=args.grid_stride or base.grid_stride)
    return build_efficientnet_lite(backbone.spec, settings=settings)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if not (args.data / "classes.txt").exists():
        sys.exit(f"CamVid not found at {args.data}: pass --data DIR (or set RNS_SHARED)")
    torch.manual_seed(0)
    backbone, smoke = open_backbone(args)
    args.smoke = smoke
    if args.short_side or args.grid_stride:
        backbone = _lite_with_input(backbone, args)
    if not args.tables:
        has_text = getattr(backbone, "has_text", True)
        args.tables = ["zero-shot", "fewshot", "regions"] if has_text else ["notext"]
    names = class_names(args.data)
    queries = load_split(args.data, args.split, args.queries)
    if args.every > 1:
        queries = type(queries)(queries.name, queries.images[::args.every], queries.masks[::args.every])
    train = load_split(args.data, "train")
    print(banner(backbone, smoke))
    if "zero-shot" in args.tables:
        table_zero_shot(args, names, queries)
    if "fewshot" in args.tables:
        table_few_shot(args, backbone, names, queries, train)
    if "regions" in args.tables:
        table_regions(args, backbone, names, queries, train)
    if "notext" in args.tables:
        run_notext_table(args, backbone, names, queries, train)
    if smoke:
        print("\nSMOKE RUN: random weights; the tables above are NOT accuracy.")


if __name__ == "__main__":
    main()
