"""`rns memory audit` on CamVid: does it find corrupted examples, and does `--apply` help?

A memory of N training photos (all their classes, as `rns add-support --classes-file` adds them) is built
twice: clean, and with 20 % of the photos corrupted (in each, the two classes with the most pixels swap
labels, a slip in a labelling tool). Both are audited. The flagging rule (threshold, min evidence) is
chosen on the val split, by the val mIoU after `--apply` on the corrupted memory; the test split is held
out and reported at the chosen rule. Printed: precision and recall of the corrupted entries (and photos)
among the flagged ones, mIoU with the clean memory, the corrupted one, each after --apply, and the audit's
time per photo. Every segmentation, audit and evaluation alike, uses the fast head solver (70 steps) on
cached features, with no text (EfficientNet-Lite has none) and no background class (CamVid labels every
pixel).

    python benchmarks/audit.py                              # efficientnet-lite0, N=20, 30 val, 30 test
    python benchmarks/audit.py --photos 30 --val 40 --test 40
    python benchmarks/audit.py --smoke                      # wiring on the tiny random model, not accuracy
"""

from __future__ import annotations

import argparse
import itertools
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from camvid import DEFAULT_DATA, FeatureCache, banner, class_names, load_split, open_backbone  # noqa: E402

from rns.adapt import AdaptConfig  # noqa: E402
from rns.audit.apply import apply_audit  # noqa: E402
from rns.audit.run import audit_memory  # noqa: E402
from rns.evaluate.evaluation import ConfusionMatrix  # noqa: E402
from rns.io.imageio import load_image, load_mask  # noqa: E402
from rns.segment.pipeline import Segmenter, SegmentOptions  # noqa: E402
from rns.teach.mask_conventions import LabelMapping  # noqa: E402
from rns.teach.support import add_supports  # noqa: E402
from support_memory import SupportMemory  # noqa: E402

THRESHOLDS = (0.1, 0.25, 0.5, 1.0, 2.0)
MIN_EVIDENCE = (1, 2, 3)
OPTIONS = SegmentOptions(background=False, adapt=AdaptConfig(solver="fast"))


def swap_two_largest(mask: np.ndarray, num_classes: int) -> tuple[np.ndarray, tuple[int, int]]:
    """The mask with its two most frequent classes' labels swapped, and which two."""
    counts = np.bincount(mask[mask < num_classes].ravel(), minlength=num_classes)
    first, second = (int(c) for c in np.argsort(-counts, kind="stable")[:2])
    swapped = mask.copy()
    swapped[mask == first], swapped[mask == second] = second, first
    return swapped, (first, second)


def build(backbone, pairs: list[tuple[Path, Path]], mapping: LabelMapping, folder: Path) -> SupportMemory:
    memory = SupportMemory.open(folder / "memory.zarr")
    add_supports(backbone, memory, pairs, mapping)
    return memory


def evaluate(backbone, memory: SupportMemory, names: list[str], split, cache: FeatureCache) -> float:
    """mIoU (points) of segmenting the split's photos with the memory, as `rns segment` would."""
    segmenter = Segmenter(backbone, names, memory=memory, options=OPTIONS)
    matrix = ConfusionMatrix(len(names))
    for image_path, mask_path in zip(split.images, split.masks, strict=True):
        image = load_image(image_path)
        with torch.inference_mode():
            labels = segmenter.segment_features(image, cache(image_path)).labels
        matrix.update(load_mask(mask_path), labels)
    return 100.0 * matrix.scores(names).miou


def precision_at_truth(scored: list, truth: set, key) -> float:
    """Share of the len(truth) lowest-scored items that are truly corrupted (1.0: the score separates)."""
    ranked = sorted((item for item in scored if item.score is not None), key=lambda item: item.score)
    return len({key(item) for item in ranked[: len(truth)]} & truth) / len(truth) if truth else float("nan")


def precision_recall(flagged: set, truth: set) -> tuple[float, float]:
    hits = len(flagged & truth)
    return (hits / len(flagged) if flagged else float("nan")), (hits / len(truth) if truth else float("nan"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--model", default="efficientnet-lite0")
    parser.add_argument("--pretrained", default=None)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--variant", default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--photos", type=int, default=20, help="N: training photos in the memory")
    parser.add_argument("--corrupt", type=float, default=0.2, help="share of the N photos corrupted")
    parser.add_argument("--val", type=int, default=30, help="val photos (choose the rule)")
    parser.add_argument("--test", type=int, default=30, help="test photos (held out)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rule", default=None, metavar="T,E,WHOLE",
                        help="use this rule for the final table instead of the val-best one, e.g. 0.5,2,yes "
                             "(the grid is still printed)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    backbone, smoke = open_backbone(args)
    print(banner(backbone, smoke))
    names = class_names(args.data)
    mapping = LabelMapping.from_classes_file(args.data / "classes.txt")
    train = load_split(args.data, "train")
    rng = random.Random(args.seed)
    chosen = sorted(rng.sample(range(len(train.images)), args.photos))
    corrupted = set(rng.sample(chosen, round(args.corrupt * args.photos)))
    val, test = load_split(args.data, "val", args.val), load_split(args.data, "test", args.test)
    work = Path(tempfile.mkdtemp(prefix="rns-audit-bench-"))
    (work / "masks").mkdir()
    clean_pairs = [(train.images[i], train.masks[i]) for i in chosen]
    bad_pairs, bad_entries = [], set()
    for i in chosen:
        if i not in corrupted:
            bad_pairs.append((train.images[i], train.masks[i]))
            continue
        swapped, classes = swap_two_largest(load_mask(train.masks[i]), len(names))
        path = work / "masks" / f"{train.images[i].stem}.png"
        Image.fromarray(swapped.astype(np.uint8)).save(path)
        bad_pairs.append((train.images[i], path))
        bad_entries |= {(str(train.images[i]), names[c].casefold()) for c in classes}
    bad_photos = {str(train.images[i]) for i in corrupted}
    print(f"N = {args.photos} training photos, {len(corrupted)} corrupted (two largest classes swapped); "
          f"val {len(val.images)}, test {len(test.images)} photos; seed {args.seed}")

    start = time.perf_counter()
    clean = build(backbone, clean_pairs, mapping, work / "clean")
    bad = build(backbone, bad_pairs, mapping, work / "bad")
    print(f"memories built in {time.perf_counter() - start:.0f} s ({clean.n_prototypes} entries each)")
    features: dict[str, torch.Tensor] = {}
    reports = {}
    for label, memory in (("corrupted", bad), ("clean", clean)):
        reports[label] = audit_memory(memory, backbone, options=OPTIONS, feature_cache=features)
        report = reports[label]
        print(f"audit of the {label} memory: {report.photos_audited} photos in {report.seconds:.0f} s "
              f"({report.seconds_per_photo:.1f} s per photo, {report.head_fits} head fits, "
              f"{report.head_fits / max(report.photos_audited, 1):.0f} per photo; the first audit includes "
              "computing each photo's features once)")
    cache = FeatureCache(backbone)
    base = {label: {split.name: evaluate(backbone, memory, names, split, cache) for split in (val, test)}
            for label, memory in (("clean", clean), ("corrupted", bad))}  # fmt: skip

    def entry_key(entry) -> tuple[str, str]:
        return entry.image, entry.class_name.casefold()

    bad_report = reports["corrupted"]
    at_entries = precision_at_truth(bad_report.entries, bad_entries, entry_key)
    at_photos = precision_at_truth(bad_report.photos, bad_photos, lambda photo: photo.image)
    print(f"\nranking of the corrupted memory: of the {len(bad_entries)} lowest entry scores, "
          f"{at_entries:.2f} are corrupted entries; of the {len(bad_photos)} lowest photo scores, "
          f"{at_photos:.2f} are corrupted photos")
    print("\nrule (threshold points, min evidence, whole photos) on the corrupted memory, val split:")
    print("  threshold  evidence  photos  flagged  entry P / R    photo P / R    val mIoU after --apply")
    rows = []
    for threshold, evidence, whole in itertools.product(THRESHOLDS, MIN_EVIDENCE, (True, False)):
        bad_report.threshold, bad_report.min_evidence, bad_report.whole_photos = threshold, evidence, whole
        ids = bad_report.flagged_sources()
        flagged = {entry_key(e) for e in bad_report.entries if e.source_id in ids}
        flagged_photos = {image for image, _ in flagged}
        apply_audit(bad, bad_report)
        miou = evaluate(backbone, bad, names, val, cache)
        entry_pr, photo_pr = precision_recall(flagged, bad_entries), precision_recall(flagged_photos,
                                                                                      bad_photos)
        rows.append((miou, threshold, evidence, whole, len(flagged), entry_pr, photo_pr))
        print(f"  {threshold:9g}  {evidence:8d}  {'yes' if whole else 'no':>6}  {len(flagged):7d}  "
              f"{entry_pr[0]:.2f} / {entry_pr[1]:.2f}"
              f"    {photo_pr[0]:.2f} / {photo_pr[1]:.2f}    {miou:.2f}")
    best = max(rows, key=lambda row: (round(row[0], 2), row[1]))
    if args.rule:
        given = args.rule.split(",")
        wanted = (float(given[0]), int(given[1]), given[2] == "yes")
        best = next(row for row in rows if (row[1], row[2], row[3]) == wanted)
    _, threshold, evidence, whole, n_flagged, entry_pr, photo_pr = best
    results = {}
    for label, memory in (("corrupted", bad), ("clean", clean)):
        report = reports[label]
        report.threshold, report.min_evidence, report.whole_photos = threshold, evidence, whole
        demoted = apply_audit(memory, report)
        results[label] = (demoted, {split.name: evaluate(backbone, memory, names, split, cache)
                                    for split in (val, test)})  # fmt: skip
    print(f"\n{'given' if args.rule else 'chosen on val'}: threshold {threshold:g} points, min evidence "
          f"{evidence}, whole photos "
          f"{'yes' if whole else 'no'}; corrupted memory: "
          f"{n_flagged} entries flagged, entry precision {entry_pr[0]:.2f} recall {entry_pr[1]:.2f} "
          f"({len(bad_entries)} corrupted entries), photo precision {photo_pr[0]:.2f} "
          f"recall {photo_pr[1]:.2f}")
    print("\n| memory | entries excluded | val mIoU | test mIoU |")
    print("|---|---|---|---|")
    print(f"| clean | 0 | {base['clean']['val']:.2f} | {base['clean']['test']:.2f} |")
    print(f"| clean, after --apply | {results['clean'][0]} | {results['clean'][1]['val']:.2f} | "
          f"{results['clean'][1]['test']:.2f} |")
    print(f"| corrupted (20 %) | 0 | {base['corrupted']['val']:.2f} | {base['corrupted']['test']:.2f} |")
    print(f"| corrupted, after --apply | {results['corrupted'][0]} | {results['corrupted'][1]['val']:.2f} | "
          f"{results['corrupted'][1]['test']:.2f} |")
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
