"""Test helpers for the support tests: a fast fake backbone and small synthetic images and masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from rns.backbone.geometry import ImageGeometry

DIM = 8


class FakeBackbone:
    """Features that depend on the image's pixels (so different images give different prototypes).

    Each 4x4 patch's mean colour goes through a fixed random projection; counts its calls so tests can
    tell whether features were computed.
    """

    def __init__(self, name: str = "fake", fail_after: int | None = None) -> None:
        self.fingerprint = {"model": name, "dim": DIM, "grid": [4, 4]}
        self.dim = DIM
        self.calls = 0
        self.fail_after = fail_after
        self._projection = torch.randn(3, DIM, generator=torch.Generator().manual_seed(0))

    def dense_features(self, image: Image.Image) -> torch.Tensor:
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt  # stands for a run killed part-way
        self.calls += 1
        pixels = torch.from_numpy(np.asarray(image.resize((4, 4), Image.BOX), dtype=np.float32)) / 255
        return torch.nn.functional.normalize(pixels @ self._projection + 0.1, dim=-1)

    def support_features(self, image: Image.Image) -> torch.Tensor:
        return self.dense_features(image)

    def geometry(self, width: int, height: int) -> ImageGeometry:
        """A 4 x 4 grid of 4-pixel patches over the image seen as 16 x 16 (no padding)."""
        return ImageGeometry(original=(height, width), resized=(16, 16), patch=4)


def write_image(path: Path, seed: int, size: tuple[int, int] = (20, 15)) -> Path:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def write_mask(path: Path, values: np.ndarray) -> Path:
    Image.fromarray(values.astype(np.uint8), mode="L").save(path)
    return path


def index_mask(size: tuple[int, int] = (20, 15), split: int = 10) -> np.ndarray:
    """Left part road (0), right part bus (1), a band of ignore (255)."""
    values = np.zeros((size[1], size[0]), dtype=np.uint8)
    values[:, split:] = 1
    values[:2, :] = 255
    return values
