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


def class_patch_weights(label_map: np.ndarray, grid: tuple[int, int], class_ids: Sequence[int]) -> np.ndarray:
    """`P [n, gh*gw]`: for each class in `class_ids`, the fraction of its pixels in each patch.

    Rows of absent classes are all zero. Computed per class as `Ry @ mask_c @ Rx^T` with the exact
    area-overlap matrices, i.e. an area pooling of the class's one-hot mask onto the grid.
    """
    height, width = label_map.shape
    grid_h, grid_w = grid
    rows = area_overlap_matrix(height, grid_h)
    cols = area_overlap_matrix(width, grid_w)
    weights = np.zeros((len(class_ids), grid_h * grid_w), dtype=np.float64)
    for index, class_id in enumerate(class_ids):
        mask = label_map == class_id
        if not mask.any():
            continue
        pooled = rows @ mask.astype(np.float64) @ cols.T
        weights[index] = (pooled / pooled.sum()).ravel()
    return weights


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
