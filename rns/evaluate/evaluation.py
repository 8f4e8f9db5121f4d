"""Scoring label maps against ground truth: confusion matrix, per-class IoU, mean IoU.

Pixels whose ground truth is `ignore_index` (255 by convention) count for nothing. A class that appears in
neither the ground truth nor the prediction of the whole set has no IoU and is left out of the mean, which
is the usual convention for semantic segmentation benchmarks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

IGNORE_INDEX = 255


class ConfusionMatrix:
    """Accumulates a `num_classes x num_classes` matrix (rows: truth, columns: prediction) image by image."""

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = np.zeros((num_classes, num_classes), dtype=np.int64)

    def update(self, truth: np.ndarray, prediction: np.ndarray) -> None:
        """Add one image. Predictions outside 0..num_classes-1 are a caller bug and raise."""
        if truth.shape != prediction.shape:
            raise ValueError(f"truth {truth.shape} and prediction {prediction.shape} differ in size")
        valid = truth != self.ignore_index
        t = truth[valid].astype(np.int64)
        p = prediction[valid].astype(np.int64)
        if t.size and (t.max() >= self.num_classes or t.min() < 0):
            raise ValueError(f"ground truth holds class ids outside 0..{self.num_classes - 1}")
        if p.size and (p.max() >= self.num_classes or p.min() < 0):
            raise ValueError(f"prediction holds class ids outside 0..{self.num_classes - 1}")
        self.matrix += np.bincount(t * self.num_classes + p, minlength=self.num_classes**2).reshape(
            self.num_classes, self.num_classes
        )

    def scores(self, class_names: list[str] | None = None) -> Scores:
        """Per-class IoU (NaN where the class never occurs) and their mean over the classes that occur."""
        tp = np.diag(self.matrix).astype(np.float64)
        union = self.matrix.sum(0) + self.matrix.sum(1) - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = np.where(union > 0, tp / union, np.nan)
        names = class_names or [str(i) for i in range(self.num_classes)]
        present = ~np.isnan(iou)
        miou = float(iou[present].mean()) if present.any() else float("nan")
        total = self.matrix.sum()
        accuracy = float(tp.sum() / total) if total else float("nan")
        return Scores(miou=miou, iou=dict(zip(names, iou.tolist(), strict=True)), pixel_accuracy=accuracy)


@dataclass
class Scores:
    """Mean IoU and per-class IoU (fractions in 0..1; NaN for classes absent from truth and prediction)."""

    miou: float
    iou: dict[str, float]
    pixel_accuracy: float

    def as_percentages(self) -> dict[str, object]:
        """JSON-friendly view in percent, NaN written as None."""

        def pct(value: float) -> float | None:
            return None if np.isnan(value) else round(100.0 * value, 2)

        return {
            "miou": pct(self.miou),
            "pixel_accuracy": pct(self.pixel_accuracy),
            "iou": {name: pct(value) for name, value in self.iou.items()},
        }
