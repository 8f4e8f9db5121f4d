"""Synthetic photos for pipeline tests: two textures side by side, and their masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

HEIGHT, WIDTH = 120, 160


def two_texture_image(seed: int) -> np.ndarray:
    """Left half: noisy red blobs; right half: green-blue stripes. Different seeds, same two 'classes'."""
    rng = np.random.default_rng(seed)
    image = np.zeros((HEIGHT, WIDTH, 3), dtype=np.float32)
    left = image[:, : WIDTH // 2]
    left[..., 0] = 200
    left[..., 1:] = 40
    left += rng.normal(0, 25, left.shape)
    right = image[:, WIDTH // 2 :]
    stripes = (np.arange(WIDTH // 2) // 4 % 2)[None, :] * 120
    right[..., 1] = 80 + stripes
    right[..., 2] = 200 - stripes
    right += rng.normal(0, 10, right.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def left_half_mask(value: int = 1, rest: int = 0) -> np.ndarray:
    mask = np.full((HEIGHT, WIDTH), rest, dtype=np.uint8)
    mask[:, : WIDTH // 2] = value
    return mask


def save_pair(folder: Path, name: str, seed: int) -> tuple[Path, Path]:
    """Write a two-texture photo and its mask (1 = left texture, 0 = right) as PNGs."""
    folder.mkdir(parents=True, exist_ok=True)
    image_path, mask_path = folder / f"{name}.png", folder / f"{name}_mask.png"
    Image.fromarray(two_texture_image(seed)).save(image_path)
    Image.fromarray(left_half_mask()).save(mask_path)
    return image_path, mask_path
