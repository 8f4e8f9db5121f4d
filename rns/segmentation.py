"""The result of segmenting one image: what the pipeline returns and what the writers save."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# 0 is always background; asked classes follow in the order the user named them.
BACKGROUND = "background"


@dataclass
class Segmentation:
    """Labels and scores for one image.

    `labels[y, x]` is an index into `class_names` (0 = background). `probabilities`, when kept, holds the
    per-class probability of every pixel as float16 `[C, H, W]` (kept only when asked for: it is large).
    """

    labels: np.ndarray
    class_names: list[str]
    probabilities: np.ndarray | None = None
    timings: dict[str, float] = field(default_factory=dict)
    info: dict[str, object] = field(default_factory=dict)

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the image."""
        return int(self.labels.shape[0]), int(self.labels.shape[1])

    def fractions(self) -> dict[str, float]:
        """Fraction of the image's pixels given to each class (all classes listed, zeros included)."""
        counts = np.bincount(self.labels.ravel(), minlength=len(self.class_names))
        total = max(int(self.labels.size), 1)
        return {name: float(counts[i]) / total for i, name in enumerate(self.class_names)}

    def mask(self, name: str) -> np.ndarray:
        """Boolean mask of one class, by name."""
        if name not in self.class_names:
            raise KeyError(f"{name!r} is not one of {self.class_names}")
        return self.labels == self.class_names.index(name)
