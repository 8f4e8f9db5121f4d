"""Scoring a segmenter on a labelled image set (what `rns eval` and the accuracy benchmark run).

The set's class list fixes the label ids: line i of the classes file names mask value i, and the segmenter
is asked for exactly those classes in that order, so its label ids and the masks' values are the same
numbers. When the first class is "background", it is the segmenter's background class (id 0).
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rns.errors import InputError
from rns.evaluate.evaluation import IGNORE_INDEX, ConfusionMatrix, Scores
from rns.io.imageio import load_image, load_mask
from rns.segmentation import BACKGROUND
from rns.teach.mask_conventions import LabelMapping


@dataclass(frozen=True)
class LabelledSet:
    """Image/mask pairs and the class names indexed by mask value."""

    pairs: list[tuple[Path, Path]]
    class_names: list[str]

    @property
    def has_background(self) -> bool:
        """True when class 0 is background (then segmenters run with their background class on)."""
        return bool(self.class_names) and self.class_names[0].lower() == BACKGROUND

    @property
    def foreground_names(self) -> list[str]:
        """The classes to ask a segmenter for (background is implicit)."""
        return self.class_names[1:] if self.has_background else list(self.class_names)


def load_labelled_set(
    images_dir: str | os.PathLike, masks_dir: str | os.PathLike, classes_file: str | os.PathLike,
    *, limit: int | None = None,
) -> LabelledSet:
    """Pair images with masks by file stem and read the class list; `limit` keeps the first N pairs."""
    from rns.teach.pairing import pair_by_stem

    mapping = LabelMapping.from_classes_file(classes_file)
    ids = sorted(mapping.values)
    if ids != list(range(len(ids))):
        raise InputError(f"{classes_file}: class ids must run 0..N-1 for evaluation")
    names = [mapping.values[i] for i in ids]
    if any(name.lower() == BACKGROUND for name in names[1:]):
        raise InputError(f"{classes_file}: 'background' may only be the first class (id 0)")
    folded = [name.casefold() for name in names]
    twice = next((i for i, name in enumerate(folded) if name in folded[:i]), None)
    if twice is not None:  # class names ignore case, so "Car" after "car" would merge two ids
        first = folded.index(folded[twice])
        raise InputError(
            f"{classes_file}: lines {first + 1} and {twice + 1} name the same class (names ignore case); "
            "evaluation needs one distinct name per id"
        )
    pairs = pair_by_stem(images_dir, masks_dir)
    if limit is not None:
        pairs = pairs[: max(0, limit)]
    return LabelledSet(pairs, names)


def read_truth(mask_path: Path, num_classes: int) -> np.ndarray:
    """A ground-truth mask, checked: every value is a class id or 255 (ignore)."""
    truth = load_mask(mask_path)
    bad = np.unique(truth[(truth >= num_classes) & (truth != IGNORE_INDEX)])
    if bad.size:
        raise InputError(
            f"mask {mask_path} holds values {bad[:5].tolist()} that are neither class ids "
            f"(0..{num_classes - 1}) nor 255 (ignore): check the classes file"
        )
    return truth


@dataclass
class EvaluationReport:
    """Scores over the set, plus per-stage median seconds per image."""

    scores: Scores
    num_images: int
    median_seconds: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {"num_images": self.num_images, **self.scores.as_percentages(),
                "median_seconds": self.median_seconds}  # fmt: skip


def evaluate(
    segmenter, labelled: LabelledSet, *, progress: Callable[[int, int], None] | None = None,
    pairs: Sequence[tuple[Path, Path]] | None = None,
) -> EvaluationReport:
    """Segment every image of the set and score it. `segmenter.class_names` must equal the set's classes."""
    if list(segmenter.class_names) != list(labelled.class_names):
        raise InputError(
            f"the segmenter's classes {segmenter.class_names} differ from the set's {labelled.class_names}"
        )
    pairs = list(pairs if pairs is not None else labelled.pairs)
    matrix = ConfusionMatrix(len(labelled.class_names))
    stage_seconds: dict[str, list[float]] = {}
    for done, (image_path, mask_path) in enumerate(pairs, start=1):
        image = load_image(image_path)
        truth = read_truth(mask_path, len(labelled.class_names))
        if truth.shape != (image.height, image.width):
            raise InputError(
                f"mask {mask_path} is {truth.shape[1]}x{truth.shape[0]} but image {image_path} is "
                f"{image.width}x{image.height}: masks must match their images"
            )
        result = segmenter.segment(image)
        matrix.update(truth, result.labels)
        for stage, seconds in result.timings.items():
            stage_seconds.setdefault(stage, []).append(seconds)
        if progress is not None:
            progress(done, len(pairs))
    medians = {stage: statistics.median(values) for stage, values in stage_seconds.items()}
    return EvaluationReport(matrix.scores(labelled.class_names), len(pairs), medians)
