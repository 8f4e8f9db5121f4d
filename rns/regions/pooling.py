"""Area-weighted pooling of patch features into regions, and spreading region predictions back to pixels.

A region's feature is `normalize(sum_j A_rj x_j)`, where `A_rj` is the fraction of region r's pixels that
fall in patch j: the same soft pooling the support memory uses for class masks, so region queries and stored
prototypes are comparable. Patch (i, j) of a `gh x gw` grid covers rows `i*H/gh ... (i+1)*H/gh` and columns
`j*W/gw ... (j+1)*W/gw` of the image (the backbone's contract); when H is not a multiple of gh a pixel row
straddles two patch rows and its area is split between them exactly, so the weights are true area fractions.

Cost. The weights are accumulated with four weighted bincounts over the pixels into an `[R, gh*gw]` matrix
(each pixel touches at most 2 x 2 patches), never an `[R, H, W]` one-hot: 200 regions at 1000x750 with a
28x37 grid is a 0.2 M-entry matrix, where the one-hot would be 150 M.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from rns.backbone.geometry import ImageGeometry
from rns.teach.prototypes import block_counts


def _axis_overlaps(pixels: int, cells: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each pixel [p, p+1) on an axis of `pixels` split into `cells` equal cells [c*P/C, (c+1)*P/C):
    the first cell it touches, the length of that overlap, and the length spilling into the next cell.

    Exact in rational arithmetic (all positions scaled by `cells`), so no pixel is lost to rounding.
    """
    if cells > pixels:
        raise ValueError(f"a patch grid of {cells} cells is finer than the {pixels} pixels it covers")
    start = np.arange(pixels, dtype=np.int64) * cells  # pixel p spans [p*C, (p+1)*C) in scaled units
    first = start // pixels  # cell c spans [c*P, (c+1)*P) in the same units
    first_end = (first + 1) * pixels
    in_first = np.minimum(start + cells, first_end) - start
    spill = cells - in_first
    return first, in_first / cells, spill / cells


def region_patch_weights(region_map: np.ndarray, grid: tuple[int, int]) -> torch.Tensor:
    """`A [R, gh*gw]` float32: row r holds the fraction of region r's area in each patch (rows sum to 1)."""
    if region_map.ndim != 2:
        raise ValueError(f"region_map must be 2-D [H, W], got shape {region_map.shape}")
    height, width = region_map.shape
    grid_h, grid_w = int(grid[0]), int(grid[1])
    ids = np.asarray(region_map, dtype=np.int64)
    n_regions = int(ids.max()) + 1 if ids.size else 0
    if ids.size and ids.min() < 0:
        raise ValueError("region_map has negative ids")

    row_cell, row_w0, row_w1 = _axis_overlaps(height, grid_h)
    col_cell, col_w0, col_w1 = _axis_overlaps(width, grid_w)
    n_cells = grid_h * grid_w
    base = ids * n_cells  # [H, W]
    weights = np.zeros(n_regions * n_cells, dtype=np.float64)
    for d_row, row_w in ((0, row_w0), (1, row_w1)):
        rows = np.minimum(row_cell + d_row, grid_h - 1)  # weight is 0 where the +1 cell does not exist
        for d_col, col_w in ((0, col_w0), (1, col_w1)):
            cols = np.minimum(col_cell + d_col, grid_w - 1)
            pixel_w = row_w[:, None] * col_w[None, :]
            if not pixel_w.any():
                continue
            cell = rows[:, None] * grid_w + cols[None, :]
            weights += np.bincount((base + cell).ravel(), weights=pixel_w.ravel(), minlength=weights.size)
    matrix = weights.reshape(n_regions, n_cells)
    area = matrix.sum(axis=1, keepdims=True)
    matrix /= np.maximum(area, 1e-12)
    return torch.from_numpy(matrix.astype(np.float32))


def pool_regions(features: torch.Tensor, region_map: np.ndarray,
                 geometry: ImageGeometry | None = None) -> torch.Tensor:
    """Region features `[R, d]`, L2-normalised, from patch features `[gh, gw, d]` and a region map `[H, W]`.

    With the image's `geometry` (the backbone's padded grid), each region is count-pooled as the
    reference pools its SAM masks: the map resized like the image, padded, counted per patch. Without
    it, the grid spans the map exactly and pooling is by exact area. The result is on the features'
    device and dtype. Region ids must be 0..R-1 (see `paint.compact_ids`); an id with no pixels (or
    none left after the resize) gets a zero row.
    """
    if features.ndim != 3:
        raise ValueError(f"features must be [gh, gw, d], got shape {tuple(features.shape)}")
    grid_h, grid_w, dim = features.shape
    if geometry is not None:
        ids = np.asarray(region_map, dtype=np.int64)
        counts = block_counts(ids, geometry, int(ids.max()) + 1 if ids.size else 0)
        counts /= np.maximum(counts.sum(axis=1, keepdims=True), 1e-12)
        weights = torch.from_numpy(counts.astype(np.float32))
    else:
        weights = region_patch_weights(region_map, (grid_h, grid_w))
    weights = weights.to(device=features.device, dtype=torch.float32)
    pooled = weights @ features.reshape(grid_h * grid_w, dim).float()
    return F.normalize(pooled, dim=-1).to(features.dtype)


def regions_to_pixels(region_labels: np.ndarray | torch.Tensor, region_map: np.ndarray) -> np.ndarray:
    """Per-pixel labels `[H, W]` from per-region labels `[R]`: every pixel takes its region's label."""
    labels = np.asarray(region_labels.cpu() if torch.is_tensor(region_labels) else region_labels)
    if labels.ndim != 1:
        raise ValueError(f"region_labels must be 1-D [R], got shape {labels.shape}")
    ids = np.asarray(region_map)
    if ids.size and ids.max() >= labels.shape[0]:
        raise ValueError(f"region_map has id {int(ids.max())} but only {labels.shape[0]} region labels")
    return labels[ids]


def region_scores_to_pixels(region_scores: torch.Tensor, region_map: np.ndarray) -> torch.Tensor:
    """Per-pixel scores `[C, H, W]` from per-region scores `[R, C]` (the layout of `Segmentation`'s
    probabilities): every pixel takes its region's score vector. Stays on the scores' device."""
    if region_scores.ndim != 2:
        raise ValueError(f"region_scores must be [R, C], got shape {tuple(region_scores.shape)}")
    index = torch.as_tensor(np.asarray(region_map), dtype=torch.long, device=region_scores.device)
    if index.numel() and int(index.max()) >= region_scores.shape[0]:
        raise ValueError(
            f"region_map has id {int(index.max())} but only {region_scores.shape[0]} region score rows"
        )
    return region_scores[index].permute(2, 0, 1)
