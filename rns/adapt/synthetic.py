"""Synthetic feature-space scenes: classes as clusters, text vectors of chosen quality, a support memory.

They let the adaptation be tested and benchmarked without a backbone. The geometry imitates CLIP's:
image features of a class scatter around a class centre; text vectors sit in their own region of the
space (a shared "text" direction, the modality gap) tilted towards the centre of the class they name, so
that the zero-shot pass works for clear names. An *ambiguous* class gets a text vector that points
between its own centre and another class's, so zero-shot confuses the two and only examples can separate
them. Supports are per-image prototypes: cluster points with less noise (they average many patches).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from rns.adapt.retrieval import ArraySource
from rns.adapt.types import ClassText


@dataclass
class SceneSpec:
    """What to generate; every field has a small, test-sized default."""

    dim: int = 64
    num_classes: int = 5              # background (index 0, several modes) + asked classes
    background_modes: int = 3
    queries_per_class: int = 60
    present: tuple[int, ...] | None = None  # classes present in the image; None = all
    centre_similarity: float = 0.0    # cosine between class centres (CLIP features are anisotropic)
    query_noise: float = 0.9
    support_noise: float = 0.5
    supports_per_class: int = 5       # per-image prototypes stored per asked class and per background mode
    no_support: tuple[int, ...] = ()  # classes with no stored example
    no_text: tuple[int, ...] = ()     # classes with no usable name
    ambiguous: tuple[tuple[int, int], ...] = ()  # (a, b): the text of a points halfway towards b
    distractors: int = 0              # rows of an unasked class far from everything in the image
    seed: int = 0


@dataclass
class Scene:
    queries: torch.Tensor             # [n, d] normalised
    labels: torch.Tensor              # [n] true class of each query
    text: ClassText
    source: ArraySource               # memory class id = class index; distractors use id num_classes
    class_index: dict[int, int | None] = field(default_factory=dict)
    centres: np.ndarray | None = None
    distractor_rows: np.ndarray | None = None


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _scatter(rng: np.random.Generator, centre: np.ndarray, count: int, noise: float) -> np.ndarray:
    dim = centre.shape[-1]
    return _unit(centre[None] + noise * rng.standard_normal((count, dim)) / np.sqrt(dim))


def make_scene(spec: SceneSpec) -> Scene:
    """Generate one image's queries, the class texts and a support memory (see the module docstring)."""
    rng = np.random.default_rng(spec.seed)
    d, num_classes = spec.dim, spec.num_classes
    text_direction = _unit(rng.standard_normal(d))
    # centres[c] is [modes, d]: background has several modes, every other class one.
    common = _unit(rng.standard_normal(d))
    shared, own = np.sqrt(spec.centre_similarity), np.sqrt(1.0 - spec.centre_similarity)
    mode_counts = [spec.background_modes if c == 0 else 1 for c in range(num_classes)]
    centres = [_unit(shared * common + own * _unit(rng.standard_normal((m, d)))) for m in mode_counts]
    ambiguous = dict(spec.ambiguous)

    def text_of(c: int) -> torch.Tensor | None:
        if c in spec.no_text:
            return None
        semantic = centres[c] - shared * common  # names carry the class-specific part only
        if c in ambiguous:
            semantic = semantic + centres[ambiguous[c]][:1] - shared * common
        jitter = 0.05 * rng.standard_normal(semantic.shape)
        vectors = _unit(0.55 * _unit(semantic) + 0.8 * text_direction + jitter)
        return torch.from_numpy(vectors.astype(np.float32))

    text = ClassText.from_list([text_of(c) for c in range(num_classes)],
                               ["background"] + [f"class{c}" for c in range(1, num_classes)])
    present = spec.present if spec.present is not None else tuple(range(num_classes))
    query_blocks, label_blocks = [], []
    for c in present:
        modes = centres[c]
        per_mode = max(spec.queries_per_class // len(modes), 1)
        for mode in modes:
            query_blocks.append(_scatter(rng, mode, per_mode, spec.query_noise))
            label_blocks.append(np.full(per_mode, c))
    rows, ids = [], []
    for c in range(num_classes):
        if c in spec.no_support:
            continue
        for mode in centres[c]:
            rows.append(_scatter(rng, mode, spec.supports_per_class, spec.support_noise))
            ids.append(np.full(spec.supports_per_class, c))
    distractor_rows = None
    if spec.distractors:
        far = _unit(-np.mean([m for block in centres for m in block], axis=0) - text_direction)
        start = sum(len(r) for r in rows)
        rows.append(_scatter(rng, far, spec.distractors, spec.support_noise))
        ids.append(np.full(spec.distractors, num_classes))
        distractor_rows = np.arange(start, start + spec.distractors)
    vectors = np.concatenate(rows) if rows else np.zeros((0, d))
    class_ids = np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64)
    return Scene(
        queries=torch.from_numpy(np.concatenate(query_blocks).astype(np.float32)),
        labels=torch.from_numpy(np.concatenate(label_blocks)).long(),
        text=text,
        source=ArraySource(vectors.astype(np.float32), class_ids),
        class_index={c: c for c in range(num_classes)},
        centres=np.stack([m[0] for m in centres]),
        distractor_rows=distractor_rows,
    )


def mean_iou(predicted: torch.Tensor, truth: torch.Tensor, num_classes: int) -> float:
    """Mean IoU over the classes present in the truth or the prediction."""
    ious = []
    for c in range(num_classes):
        p, t = predicted == c, truth == c
        union = int((p | t).sum())
        if union:
            ious.append(int((p & t).sum()) / union)
    return float(np.mean(ious)) if ious else 0.0
