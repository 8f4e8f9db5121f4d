"""The few-shot table for a backbone without text (EfficientNet-Lite): baselines against RNS, on CamVid.

Rows (all on the same cached features and the same memory per draw):
- nearest class prototype: each patch takes the class whose mean stored row (the memory's class prototype)
  is closest;
- kNN vote: each patch takes the majority class of its `k` nearest stored rows (the very rows RNS
  retrieves, k = `AdaptConfig.k`), ties to the nearest;
- RNS, no text: retrieval + per-image head, the pipeline's no-text setting (the reference's: no anchors,
  uniform relevance, the head trained on the retrieved rows only);
- RNS, no text + visual anchors: the same with `visual_anchors_without_text=True` (each class's prototype
  as an extra anchor, rns's pre-parity rule, kept as an option);
- RNS, no text + superpixels: the same over superpixel regions.

Used by `benchmarks/accuracy.py --tables notext` (the default for an image-only backbone).
"""

from __future__ import annotations

import statistics
import sys
import time
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F
from camvid import FeatureCache, build_memory, draw_supports

from rns.adapt import AdaptConfig
from rns.evaluate.evaluation import ConfusionMatrix
from rns.io.imageio import load_image, load_mask
from rns.segment.pipeline import Segmenter, SegmentOptions
from rns.segment.upsample import upsample_probabilities


def _class_of_rows(memory, rows: np.ndarray, names: list[str]) -> np.ndarray:
    _, memory_ids = memory.rows(rows.reshape(-1))
    by_id = {info.id: names.index(info.name) for info in memory.classes()}
    return np.array([by_id[int(i)] for i in memory_ids]).reshape(rows.shape)


def _to_pixels(labels: torch.Tensor, features: torch.Tensor, geometry, num_classes: int) -> np.ndarray:
    gh, gw, _ = features.shape
    one_hot = F.one_hot(labels, num_classes).float().reshape(gh, gw, -1)
    return upsample_probabilities(one_hot, geometry.original, geometry=geometry)[0]


def prototype_labels(memory, features: torch.Tensor, geometry, names: list[str]) -> np.ndarray:
    """Each patch takes the class of its nearest class prototype (mean of the class's stored rows)."""
    ids, vectors = memory.class_prototypes()
    by_id = {info.id: names.index(info.name) for info in memory.classes()}
    owners = torch.tensor([by_id[int(i)] for i in ids])
    queries = features.reshape(-1, features.shape[-1]).float()
    best = (queries @ F.normalize(torch.from_numpy(np.asarray(vectors, np.float32)), dim=-1).T).argmax(1)
    return _to_pixels(owners[best], features, geometry, len(names))


def knn_vote_labels(memory, features: torch.Tensor, geometry, names: list[str], k: int) -> np.ndarray:
    """Each patch takes the majority class of its k nearest stored rows (ties: the nearer row's class)."""
    queries = features.reshape(-1, features.shape[-1]).cpu().numpy()
    found = memory.search(queries, k)
    classes = torch.from_numpy(_class_of_rows(memory, np.maximum(found.rows, 0), names))
    valid = torch.from_numpy(found.rows >= 0)
    votes = torch.zeros(classes.shape[0], len(names))
    rank_bonus = torch.linspace(1e-3, 0, k).expand_as(classes)  # the nearest row wins a tie
    votes.scatter_add_(1, classes, valid.float() * (1.0 + rank_bonus))
    return _to_pixels(votes.argmax(1), features, geometry, len(names))


def support_patches(cache: FeatureCache, split, indices: list[int], names: list[str]):
    """Every labelled patch of the chosen support images as one row: `[n, d]` features, `[n]` classes.

    A patch takes the majority label of the pixels it covers (mask resized like the photo); unlabelled
    (255) majorities are left out. The memory keeps one mean row per (image, class) instead.
    """
    from rns.backbone.geometry import pad_labels, resize_labels

    rows, labels = [], []
    for index in indices:
        image, mask = load_image(split.images[index]), load_mask(split.masks[index])
        geometry = cache.backbone.geometry(image.width, image.height)
        features = cache(split.images[index])
        gh, gw, dim = features.shape
        stride = geometry.patch
        resized = pad_labels(resize_labels(mask, geometry.resized), geometry.padded, 255)
        blocks = resized.reshape(gh, stride, gw, stride).transpose(0, 2, 1, 3).reshape(gh * gw, -1)
        counts = np.stack([(blocks == c).sum(1) for c in range(len(names))], axis=1)
        keep = counts.sum(1) > blocks.shape[1] // 2
        rows.append(features.reshape(-1, dim)[torch.from_numpy(keep)])
        labels.append(torch.from_numpy(counts.argmax(1)[keep]))
    return torch.cat(rows).float(), torch.cat(labels)


def patch_knn_labels(patches, features: torch.Tensor, geometry, names: list[str], k: int = 10) -> np.ndarray:
    """Each query patch takes the majority class of its k nearest support patches."""
    rows, classes = patches
    queries = features.reshape(-1, features.shape[-1]).float()
    nearest = (queries @ rows.T).topk(min(k, rows.shape[0]), dim=1).indices
    votes = torch.zeros(queries.shape[0], len(names)).scatter_add_(1, classes[nearest],
                                                                    torch.ones(nearest.shape))
    return _to_pixels(votes.argmax(1), features, geometry, len(names))


class MemoProposer:
    """Superpixels of each query photo computed once per run (they do not depend on the supports or seed)."""

    def __init__(self, proposer) -> None:
        self.proposer = proposer
        self._maps: dict[bytes, np.ndarray] = {}

    def settings_key(self) -> str:
        return self.proposer.settings_key()

    def propose(self, image) -> np.ndarray:
        import hashlib

        key = hashlib.blake2b(image.tobytes(), digest_size=16).digest() + repr(image.size).encode()
        if key not in self._maps:
            self._maps[key] = self.proposer.propose(image)
        return self._maps[key]


def _adapt_changes(config: AdaptConfig, text: str) -> dict:
    """`"steps=2000 lr=0.01"` as AdaptConfig changes, each value parsed as the field's current type."""
    changes = {}
    for item in text.split():
        key, _, value = item.partition("=")
        changes[key] = type(getattr(config, key))(value)
    return changes


def run_notext_table(args, backbone, names, queries, train) -> None:
    cache = FeatureCache(backbone, getattr(args, "feature_cache", None))
    cache.warm(list(queries.images))
    config = AdaptConfig()
    proposer = None
    anchored_config = replace(config, visual_anchors_without_text=True)
    rows = ["nearest class prototype", f"kNN vote (k={config.k})", "RNS, no text",
            "RNS, no text + visual anchors", "RNS, no text + superpixels"]
    if "superpixels" in getattr(args, "notext_regions", "superpixels"):
        from rns.regions import build_region_proposer

        proposer = MemoProposer(build_region_proposer("superpixels", device=str(backbone.device)))
    else:
        rows = rows[:4]
    extra_anchor = getattr(args, "anchor_weight", None)
    if extra_anchor is not None:
        rows.append(f"RNS, no text, anchor weight {extra_anchor:g}")
    other_ks = list(getattr(args, "rns_k", None) or [])
    rows.extend(f"RNS, no text, k={k}" for k in other_ks)
    settings = {f"RNS, no text, {text}": _adapt_changes(config, text)
                for text in getattr(args, "rns_set", None) or []}
    rows.extend(settings)
    if getattr(args, "patch_knn", False):
        rows.append("patch kNN (k=10, every support patch a row)")
    results = {name: {b: [] for b in args.shots} for name in rows}
    seconds: dict[str, list[float]] = {name: [] for name in rows}
    for shots in args.shots:
        for seed in args.seeds:
            chosen = draw_supports(train, len(names), shots, seed)
            memory = build_memory(cache, train, chosen, names)
            patches = support_patches(cache, train, chosen, names) if rows[-1].startswith("patch") else None
            segmenters = {
                "RNS, no text": Segmenter(backbone, names, memory=memory,
                                          options=SegmentOptions(background=False, adapt=config)),
                "RNS, no text + visual anchors": Segmenter(
                    backbone, names, memory=memory,
                    options=SegmentOptions(background=False, adapt=anchored_config)),
            }
            if proposer is not None:
                segmenters["RNS, no text + superpixels"] = Segmenter(
                    backbone, names, memory=memory, region_proposer=proposer,
                    options=SegmentOptions(background=False, regions="superpixels", adapt=config))
            for name, changes in settings.items():
                segmenters[name] = Segmenter(backbone, names, memory=memory, options=SegmentOptions(
                    background=False, adapt=replace(config, **changes)))
            for k in other_ks:
                segmenters[f"RNS, no text, k={k}"] = Segmenter(
                    backbone, names, memory=memory, options=SegmentOptions(background=False,
                                                                           adapt=replace(config, k=k)))
            if extra_anchor is not None:
                anchored = replace(config, anchor_weight=extra_anchor)
                segmenters[f"RNS, no text, anchor weight {extra_anchor:g}"] = Segmenter(
                    backbone, names, memory=memory, options=SegmentOptions(background=False, adapt=anchored))
            matrices = {name: ConfusionMatrix(len(names)) for name in rows}
            for image_path, mask_path in zip(queries.images, queries.masks, strict=True):
                truth = load_mask(mask_path)
                features = cache(image_path)
                image = load_image(image_path)
                geometry = backbone.geometry(image.width, image.height)
                for name in rows:
                    start = time.perf_counter()
                    if name == rows[0]:
                        predicted = prototype_labels(memory, features, geometry, names)
                    elif name == rows[1]:
                        predicted = knn_vote_labels(memory, features, geometry, names, config.k)
                    elif name.startswith("patch"):
                        predicted = patch_knn_labels(patches, features, geometry, names)
                    else:
                        predicted = segmenters[name].segment_features(image, features).labels
                    seconds[name].append(time.perf_counter() - start)
                    matrices[name].update(truth, predicted)
            for name in rows:
                results[name][shots].append(100.0 * matrices[name].scores(names).miou)
            line = ", ".join(f"{name} {results[name][shots][-1]:.1f}" for name in rows)
            print(f"  B={shots} seed={seed}: {len(chosen)} support images; {line}", file=sys.stderr,
                  flush=True)
    seeds = ",".join(map(str, args.seeds))
    print(f"\n## No-text few-shot mIoU on CamVid {queries.name} ({len(queries.images)} images), "
          f"{backbone.spec.model}, supports from train, B images per class, mean ± std over seeds {seeds}")
    print("| method | " + " | ".join(f"B={b}" for b in args.shots) + " | s/img after the backbone |")
    print("|---|" + "---|" * (len(args.shots) + 1))
    for name in rows:
        cells = []
        for shots in args.shots:
            values = results[name][shots]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.mean(values):.1f} ± {spread:.1f}")
        print(f"| {name} | " + " | ".join(cells) + f" | {statistics.median(seconds[name]):.3f} |")
    if cache.seconds:
        forward = statistics.median(cache.seconds.values())
        print(f"\nbackbone forward median {1000 * forward:.0f} ms per image over the {len(cache.seconds)} "
              f"photos this process computed ({backbone.spec.model}, this CPU, one run)")
