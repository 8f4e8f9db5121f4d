"""CamVid helpers shared by the benchmark scripts: the split, the support draw, and a feature cache.

The data lives outside the repository (`$RNS_SHARED/data/camvid`, by default `../shared/data/camvid` beside
the repo root, or `--data`); it is never copied into the package.
"""

from __future__ import annotations

import random
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rns.backbone import RANDOM_LABEL, TINY_TEST_MODEL, build_backbone
from rns.errors import RnsError
from rns.io.imageio import load_image, load_mask
from rns.teach.fingerprints import support_fingerprint
from rns.teach.prototypes import DEFAULT_POOLING, extract_prototypes
from support_memory import SourceEntry, SupportMemory

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests"))
from shared_data import CAMVID as DEFAULT_DATA  # noqa: E402,F401  (RNS_SHARED, else ../shared)

IGNORE = 255


@dataclass(frozen=True)
class Split:
    """Images and masks of one split, paired by file stem, in sorted order."""

    name: str
    images: list[Path]
    masks: list[Path]


def load_split(data: Path, name: str, limit: int | None = None) -> Split:
    images = sorted((data / name / "images").glob("*.jpg"))
    if not images:
        sys.exit(f"no CamVid {name} images under {data / name / 'images'}; pass --data DIR")
    images = images[:limit] if limit else images
    masks = [data / name / "masks" / f"{image.stem}.png" for image in images]
    return Split(name, images, masks)


def class_names(data: Path) -> list[str]:
    return [line.strip() for line in (data / "classes.txt").read_text().splitlines() if line.strip()]


def draw_supports(split: Split, num_classes: int, shots: int, seed: int) -> list[int]:
    """Indices of support images: for every class, `shots` images that contain it (seeded draw).

    Each drawn image contributes all its labelled classes (its whole mask), as a user who labels a photo
    labels everything in it; an image drawn for two classes is used once.
    """
    rng = random.Random(seed)
    present: dict[int, list[int]] = {c: [] for c in range(num_classes)}
    for index, mask_path in enumerate(split.masks):
        for value in np.unique(load_mask(mask_path)):
            if int(value) < num_classes:
                present[int(value)].append(index)
    chosen: list[int] = []
    for c in range(num_classes):
        pool = [i for i in present[c] if i not in chosen]
        rng.shuffle(pool)
        have = sum(1 for i in chosen if i in present[c])
        chosen.extend(pool[: max(0, shots - have)])
    return sorted(chosen)


class FeatureCache:
    """Dense features of each image, computed once per backbone (the expensive part of every run).

    With `folder` (accuracy.py's `--feature-cache DIR`), features are also kept on disk per backbone
    fingerprint, so each photo's backbone pass runs once per model across processes and runs; `warm`
    shares the work among processes started together (each claims an image before computing it).
    """

    def __init__(self, backbone, folder: Path | None = None) -> None:
        self.backbone = backbone
        self._features: dict[Path, torch.Tensor] = {}
        self.seconds: dict[Path, float] = {}
        self.folder = None if folder is None else Path(folder) / _backbone_key(backbone)
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)

    def _file(self, path: Path) -> Path | None:
        return None if self.folder is None else self.folder / f"{path.parent.parent.name}-{path.stem}.pt"

    def __call__(self, path: Path) -> torch.Tensor:
        if path not in self._features:
            import time

            stored = self._file(path)
            if stored is not None and stored.exists():
                self._features[path] = torch.load(stored)
                return self._features[path]
            image = load_image(path)
            start = time.perf_counter()
            self._features[path] = self.backbone.dense_features(image)
            self.seconds[path] = time.perf_counter() - start
            if stored is not None:
                _save_atomically(self._features[path], stored)
        return self._features[path]

    def warm(self, paths: list[Path]) -> None:
        """Load or compute every path's features, computing only those no other process has claimed."""
        import os
        import time

        pending = list(paths)
        while pending:
            waiting = []
            for path in pending:
                stored = self._file(path)
                if stored is None or stored.exists() or path in self._features:
                    self(path)
                    continue
                try:
                    os.close(os.open(f"{stored}.claim", os.O_CREAT | os.O_EXCL))
                except FileExistsError:
                    waiting.append(path)
                    continue
                self(path)
            if len(waiting) == len(pending):
                time.sleep(1.0)
            pending = waiting


def _backbone_key(backbone) -> str:
    import hashlib
    import json

    text = json.dumps(backbone.fingerprint, sort_keys=True, default=str)
    return f"{backbone.spec.model}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def _save_atomically(value, target: Path) -> None:
    partial = target.with_suffix(f".partial{id(value)}")
    torch.save(value, partial)
    partial.replace(target)


def build_memory(cache: FeatureCache, split: Split, indices: list[int], names: list[str]) -> SupportMemory:
    """A fresh support memory (in a temporary folder) holding the chosen images' prototypes.

    Support features are the two-pass support extraction with count pooling, as `rns add-support` makes
    them (the test-time features in `cache` are a different extraction).
    """
    memory = SupportMemory.open(Path(tempfile.mkdtemp(prefix="rns-bench-")) / "memory.zarr")
    backbone = cache.backbone
    entries = []
    for index in indices:
        name = f"support-{split.name}-{split.images[index].stem}.pt"
        stored = None if cache.folder is None else cache.folder / name
        if stored is not None and stored.exists():
            vectors, ids = torch.load(stored)
        else:
            image = load_image(split.images[index])
            labels = load_mask(split.masks[index])
            geometry = backbone.geometry(image.width, image.height)
            with torch.inference_mode():
                features = backbone.support_features(image)
            vectors, ids = extract_prototypes(features, labels, range(len(names)), geometry, DEFAULT_POOLING)
            vectors, ids = vectors.cpu(), [int(i) for i in ids]
            if stored is not None:
                _save_atomically((vectors, ids), stored)
        entries.append(SourceEntry(split.images[index].stem, vectors.numpy(), [names[i] for i in ids]))
    memory.put_sources(entries, fingerprint=support_fingerprint(backbone.fingerprint, DEFAULT_POOLING))
    return memory


def open_backbone(args) -> tuple[object, bool]:
    """The backbone to measure, and whether this is a smoke run (random weights: not accuracy).

    Real weights are required for figures that claim accuracy; without them the script says so and
    stops, unless `--smoke` asks for a wiring run on the tiny random model.
    """
    if args.smoke:
        return build_backbone(TINY_TEST_MODEL, "random", device=args.device), True
    try:
        backbone = build_backbone(args.model, args.pretrained, args.checkpoint, args.variant, args.device)
    except RnsError as error:
        print(f"NO REAL WEIGHTS: {error}")
        print("No accuracy figure is printed without real weights. Run with --checkpoint FILE (or on a "
              "machine where open_clip can download the default), or with --smoke for a wiring run on a tiny "
              "random model.")
        sys.exit(3)
    return backbone, backbone.weights_label == RANDOM_LABEL


def banner(backbone, smoke: bool) -> str:
    weights = backbone.weights_label
    line = f"backbone: {backbone.spec.model} | weights: {weights} | variant: {backbone.variant} | device: " \
           f"{backbone.device}"
    if smoke:
        line = ("SMOKE RUN: random weights, the numbers below test the wiring and are NOT accuracy.\n" + line)
    return line
