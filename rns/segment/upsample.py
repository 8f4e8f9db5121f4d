"""Patch scores to pixel labels: bilinear upsampling in bands, so large photos never hold [C, H, W] at once.

The reference's rule (`mmseg_utils/apis/test.py`): the `[C, gh, gw]` probabilities are resized bilinearly
to the padded image's pixel size `16gh x 16gw`, cropped to the resized image, then resized bilinearly to
the original photo, and each pixel takes the argmax. Bilinear interpolation is separable and linear, so
the two resizes and the crop fold into one matrix per axis: `up = Ry @ S @ Rx^T` per class, with
`Ry = R(H <- rh) @ R(16gh <- gh)[:rh]` (`R` the `align_corners=False` weights of
`torch.nn.functional.interpolate`). Working a band of rows at a time keeps memory at `C x band x W`
whatever the image size; the labels are the exact argmax of the full upsampled scores.
"""

from __future__ import annotations

import numpy as np
import torch

from rns.backbone.geometry import ImageGeometry

BAND_ROWS = 256


def bilinear_matrix(out_size: int, in_size: int, device: torch.device | str = "cpu",
                    dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """`[out_size, in_size]` 1-D bilinear weights with half-pixel centres (align_corners=False)."""
    scale = in_size / out_size
    centres = (torch.arange(out_size, dtype=torch.float64) + 0.5) * scale - 0.5
    centres = centres.clamp(min=0.0, max=in_size - 1)
    low = centres.floor().long()
    high = (low + 1).clamp(max=in_size - 1)
    frac = (centres - low).to(dtype)
    weights = torch.zeros(out_size, in_size, dtype=dtype)
    rows = torch.arange(out_size)
    weights.index_put_((rows, low), 1.0 - frac, accumulate=True)
    weights.index_put_((rows, high), frac, accumulate=True)
    return weights.to(device)


def two_step_matrix(original: int, resized: int, cells: int, patch: int,
                    device: torch.device | str = "cpu") -> torch.Tensor:
    """`[original, cells]` weights of the reference's resize-to-padded, crop, resize-to-original, one axis."""
    to_padded = bilinear_matrix(cells * patch, cells, dtype=torch.float64)[:resized]
    to_original = bilinear_matrix(original, resized, dtype=torch.float64)
    return (to_original @ to_padded).float().to(device)


def upsample_probabilities(
    probs: torch.Tensor,
    size: tuple[int, int],
    *,
    geometry: ImageGeometry | None = None,
    background_threshold: float | None = None,
    keep: bool = False,
    band_rows: int = BAND_ROWS,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Upsample `[gh, gw, C]` class probabilities to `size = (H, W)`; return labels and (optionally) maps.

    With the image's `geometry` (`size` must be its original size) the reference's two-step resize is
    used; without it, one bilinear resize from the grid to `size`.
    Labels are the per-pixel argmax; with `background_threshold`, pixels whose best probability is below
    it become class 0 (background). With `keep`, the upsampled probabilities are returned as float16
    `[C, H, W]` (the caller asked to save them).
    """
    height, width = size
    gh, gw, num_classes = probs.shape
    device = probs.device
    if geometry is not None:
        if tuple(geometry.original) != (height, width) or tuple(geometry.grid) != (gh, gw):
            raise ValueError(f"geometry {geometry} does not fit size {size} and grid {(gh, gw)}")
        ry = two_step_matrix(height, geometry.resized[0], gh, geometry.patch, device)
        rx_t = two_step_matrix(width, geometry.resized[1], gw, geometry.patch, device).T.contiguous()
    else:
        ry = bilinear_matrix(height, gh, device)
        rx_t = bilinear_matrix(width, gw, device).T.contiguous()
    scores = probs.permute(2, 0, 1).float()  # [C, gh, gw]
    label_dtype = np.uint8 if num_classes <= 256 else np.uint16
    labels = np.empty((height, width), dtype=label_dtype)
    maps = np.empty((num_classes, height, width), dtype=np.float16) if keep else None
    for top in range(0, height, band_rows):
        bottom = min(height, top + band_rows)
        band = torch.matmul(torch.matmul(ry[top:bottom], scores), rx_t)  # [C, band, W]
        confidence, best = band.max(dim=0)
        if background_threshold is not None:
            best = torch.where(confidence < background_threshold, torch.zeros_like(best), best)
        labels[top:bottom] = best.cpu().numpy().astype(label_dtype)
        if maps is not None:
            maps[:, top:bottom] = band.cpu().numpy().astype(np.float16)
    return labels, maps
