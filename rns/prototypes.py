"""Per-image class prototypes: area-weighted pooling of a backbone's patch features under a label map.

For one support image with label map M, each class c present gets one prototype
`v_c = normalize(sum_j P_jc x_j)`, where `x_j` are the backbone's patch features and `P_jc` the fraction
of the class's pixels that fall in patch j. Patch (i, j) of a `gh x gw` grid covers rows
`i*H/gh .. (i+1)*H/gh` and columns `j*W/gw .. (j+1)*W/gw` of the image (the backbone contract); where a
grid line cuts through a pixel, the pixel's area is split between the patches exactly, so the pooling is
right for any image size, including sizes the grid does not divide and images smaller than the grid.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def area_overlap_matrix(pixels: int, cells: int) -> np.ndarray:
    """Overlap `[cells, pixels]` of each grid cell with each pixel along one axis, in units of 1/cells pixel.

    Cell i spans `[i*pixels/cells, (i+1)*pixels/cells)` and pixel p spans `[p, p+1)`; scaled by `cells`
    both have integer bounds (`[i*pixels, (i+1)*pixels)` and `[p*cells, (p+1)*cells)`), so the
    overlaps are exact integers and sums of their products stay exact in float64.
    """
    cell = np.arange(cells, dtype=np.int64)[:, None]
    pixel = np.arange(pixels, dtype=np.int64)[None, :]
    low = np.maximum(cell * pixels, pixel * cells)
    high = np.minimum((cell + 1) * pixels, (pixel + 1) * cells)
    return np.clip(high - low, 0, None).astype(np.float64)


_BLOCK_ELEMENTS = 1 << 22
"""Pixel-cell overlaps gathered per block of rows in the column pooling (bounds its temporary memory)."""


def class_patch_weights(label_map: np.ndarray, grid: tuple[int, int], class_ids: Sequence[int]) -> np.ndarray:
    """`P [n, gh*gw]`: for each class in `class_ids`, the fraction of its pixels in each patch.

    Rows of absent classes are all zero. This is an exact area pooling of the classes' one-hot masks
    onto the grid, `Ry @ onehot_c @ Rx^T` with the overlap matrices above, done without materialising
    the one-hot and using only the nonzero overlaps (about W + gw and H + gh of them): the column
    pooling is one weighted `bincount` over (class, row, column cell) per block of rows, the row
    pooling a segmented sum. The pixel work is linear in the pixels and independent of the classes.
    """
    height, width = label_map.shape
    grid_h, grid_w = grid
    n_classes = len(class_ids)
    # Class position of every pixel; `n_classes` collects the pixels of no listed class (ignore).
    positions = np.full(label_map.shape, n_classes, dtype=np.int64)
    for index, class_id in enumerate(class_ids):
        positions[label_map == class_id] = index

    col_overlap = area_overlap_matrix(width, grid_w)
    col_cell, col_pixel = np.nonzero(col_overlap)
    col_weight = col_overlap[col_cell, col_pixel]
    by_column = np.zeros((n_classes + 1, height, grid_w), dtype=np.float64)
    block = max(1, _BLOCK_ELEMENTS // max(len(col_pixel), 1))
    for top in range(0, height, block):
        rows = np.arange(top, min(top + block, height), dtype=np.int64)
        bins = (positions[rows][:, col_pixel] * height + rows[:, None]) * grid_w + col_cell[None, :]
        weights = np.broadcast_to(col_weight, bins.shape)
        by_column += np.bincount(bins.ravel(), weights.ravel(), minlength=by_column.size).reshape(
            by_column.shape
        )
    by_column = by_column[:n_classes]  # drop the ignored pixels

    # Row pooling: the nonzero overlaps come sorted by cell, so each cell's rows are one run to sum.
    row_overlap = area_overlap_matrix(height, grid_h)
    row_cell, row_pixel = np.nonzero(row_overlap)
    weighted = by_column[:, row_pixel, :] * row_overlap[row_cell, row_pixel][None, :, None]
    run_starts = np.searchsorted(row_cell, np.arange(grid_h))
    pooled = np.add.reduceat(weighted, run_starts, axis=1).reshape(n_classes, grid_h * grid_w)
    totals = pooled.sum(axis=1, keepdims=True)
    return np.divide(pooled, totals, out=np.zeros_like(pooled), where=totals > 0)


def extract_prototypes(
    features: torch.Tensor, label_map: np.ndarray, class_ids: Sequence[int]
) -> tuple[torch.Tensor, list[int]]:
    """Per-image prototypes of the classes present: `(vectors [n, d] float32, their class ids)`.

    `features` is the backbone's `[gh, gw, d]` grid for the image; `label_map` `[H, W]` holds class
    ids, and any pixel whose value is not in `class_ids` (255 or `IGNORE_LABEL`: ignore) counts for
    nothing. Classes of `class_ids` with no pixel are left out, so the returned ids are those present,
    in the order given. Vectors are L2-normalised and on the features' device.
    """
    if features.ndim != 3:
        raise ValueError(f"features must be [gh, gw, d], got shape {tuple(features.shape)}")
    if label_map.ndim != 2:
        raise ValueError(f"label_map must be [H, W], got shape {tuple(label_map.shape)}")
    grid_h, grid_w, dim = features.shape
    weights = class_patch_weights(label_map, (grid_h, grid_w), class_ids)
    present = [i for i in range(len(class_ids)) if weights[i].any()]
    flat = features.reshape(grid_h * grid_w, dim).float()
    if not present:
        return flat.new_zeros((0, dim)), []
    pooling = torch.from_numpy(weights[present]).to(device=flat.device, dtype=torch.float32)
    vectors = torch.nn.functional.normalize(pooling @ flat, dim=1)
    return vectors, [int(class_ids[i]) for i in present]
