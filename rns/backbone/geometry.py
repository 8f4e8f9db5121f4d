"""Where each feature comes from: the reference's resize, padding and sliding-window geometry.

An image of `W x H` pixels goes through three steps before the ViT sees it (the official RNS code's
dataset pipeline and sliding-window inference; see docs/PARITY.md for file:line):

1. **Resize**, keeping the aspect ratio, by `scale = min(long_side / max(W, H), short_side / min(W, H))`
   (fit inside 2048 x 448), to `int(W * scale + 0.5) x int(H * scale + 0.5)` pixels, bilinear with
   half-pixel centres and no antialiasing (OpenCV's INTER_LINEAR on 8-bit pixels; the result is rounded
   back to 8 bits as OpenCV does). A 480 x 360 CamVid photo becomes 597 x 448.
2. **Pad** with zeros (black, before mean/std normalisation) at the bottom and right to a whole number of
   patches: 597 x 448 -> 608 x 448, a 28 x 38 patch grid. Padding patches are features like any other.
3. **Slide** square crops over the padded image (`window_starts`), the last crop on each axis pushed back
   to end at the border.

`ImageGeometry` records the three sizes so that every later step (mask pooling, upsampling) maps between
original pixels, resized pixels and patches with the same rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class ImageGeometry:
    """Sizes of one image through resize and padding: `(height, width)` pairs, and the patch size."""

    original: tuple[int, int]
    resized: tuple[int, int]
    patch: int

    @property
    def grid(self) -> tuple[int, int]:
        """`(gh, gw)`: patches of the padded image."""
        return math.ceil(self.resized[0] / self.patch), math.ceil(self.resized[1] / self.patch)

    @property
    def padded(self) -> tuple[int, int]:
        """`(height, width)` in pixels of the padded image: the grid times the patch size."""
        gh, gw = self.grid
        return gh * self.patch, gw * self.patch


def resized_size(width: int, height: int, short_side: int, long_side: int) -> tuple[int, int]:
    """`(width, height)` after the keep-ratio resize that fits the image inside `long_side x short_side`."""
    scale = min(long_side / max(width, height), short_side / min(width, height))
    return max(1, int(width * scale + 0.5)), max(1, int(height * scale + 0.5))


def image_geometry(width: int, height: int, short_side: int, long_side: int, patch: int) -> ImageGeometry:
    """The geometry of a `width x height` image under the given resize rule and patch size."""
    new_width, new_height = resized_size(width, height, short_side, long_side)
    return ImageGeometry(original=(height, width), resized=(new_height, new_width), patch=patch)


def resize_pixels(pixels: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """`[3, h, w]` float pixels in [0, 1] of an RGB uint8 `[H, W, 3]` array resized to `size = (h, w)`.

    OpenCV's INTER_LINEAR itself (bilinear, half-pixel centres, no antialiasing, 8-bit fixed point), as the
    reference resizes. OpenCV rather than torch because the last bit matters: torch's float bilinear
    rounds about 12 % of pixels one grey level differently, which moved random-weight features by up to
    1e-3 in cosine against the reference; OpenCV's gives the reference's pixels exactly.
    """
    import cv2  # opencv-python-headless; imported here so that light callers never pay for it

    array = np.ascontiguousarray(pixels, dtype=np.uint8)
    if tuple(array.shape[:2]) != tuple(size):
        array = cv2.resize(array, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    elif not array.flags.writeable:
        array = array.copy()  # torch wants writable memory (a PIL image's array is read-only)
    return torch.from_numpy(array).permute(2, 0, 1).float().div_(255.0)


def resize_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A label map resized to `size = (h, w)` by nearest neighbour, source index `floor(dst * in / out)`.

    This is OpenCV's INTER_NEAREST (and torch's "nearest"), which the reference uses for masks.
    """
    height, width = labels.shape
    rows = np.minimum((np.arange(size[0]) * (height / size[0])).astype(np.int64), height - 1)
    cols = np.minimum((np.arange(size[1]) * (width / size[1])).astype(np.int64), width - 1)
    return labels[rows[:, None], cols[None, :]]


def pad_labels(labels: np.ndarray, size: tuple[int, int], fill: int) -> np.ndarray:
    """`labels` padded at the bottom and right to `size = (h, w)` with `fill`."""
    out = np.full(size, fill, dtype=labels.dtype)
    out[: labels.shape[0], : labels.shape[1]] = labels
    return out


def window_starts(length: int, crop: int, stride: int) -> list[int]:
    """Start offsets of crops along one axis: every `stride`, the last one ending flush with the border.

    `ceil((length - crop) / stride) + 1` windows, as the reference counts them; a crop no shorter than
    the axis is one window at 0.
    """
    if length <= crop:
        return [0]
    count = -(-(length - crop) // stride) + 1
    return [min(i * stride, length - crop) for i in range(count)]


__all__ = [
    "ImageGeometry",
    "image_geometry",
    "pad_labels",
    "resize_labels",
    "resize_pixels",
    "resized_size",
    "window_starts",
]
