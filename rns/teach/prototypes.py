"""Per-image class prototypes: patch features pooled under a label map.

For one support image with label map M, each class c present gets one prototype
`v_c = normalize(sum_j P_jc x_j)`, where `x_j` are the backbone's patch features and `P_jc` the share
of the class's pixels that fall in patch j. Two ways to count those pixels (`POOLINGS`):

- `count` (default, the reference's `gt_mask_pooling`): the mask is resized like the image (nearest
  neighbour), padded with "ignore" like the image, and cut into patch-sized blocks; `P_jc` is the number
  of class-c pixels in block j over the class's total. Exactly what the official code computes.
- `area` (an rns option): the original mask's pixels are split between the patches they overlap by exact
  area, so that no pixel is lost or counted twice by the nearest-neighbour resize (thin classes such as
  poles keep their exact share). Not the default until real weights show it helps.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from rns.backbone.geometry import ImageGeometry, pad_labels, resize_labels

POOLINGS = ("count", "area")
DEFAULT_POOLING = "count"


def area_overlap_matrix(pixels: int, cells: int, cell_units: int | None = None,
                        pixel_units: int | None = None) -> np.ndarray:
    """Overlap `[cells, pixels]` of each grid cell with each pixel along one axis, in integer units.

    Cell i spans `[i*cell_units, (i+1)*cell_units)` and pixel p spans `[p*pixel_units, (p+1)*pixel_units)`.
    The default (`cell_units=pixels`, `pixel_units=cells`) is a grid spanning the pixels exactly: units of
    1/cells pixel. A grid of `patch`-pixel cells over an image resized from `pixels` to `resized` pixels
    (padding included) is `cell_units=patch*pixels, pixel_units=resized`. The bounds are integers, so the
    overlaps are exact and sums of their products stay exact in float64.
    """
    cell_units = pixels if cell_units is None else cell_units
    pixel_units = cells if pixel_units is None else pixel_units
    cell = np.arange(cells, dtype=np.int64)[:, None]
    pixel = np.arange(pixels, dtype=np.int64)[None, :]
    low = np.maximum(cell * cell_units, pixel * pixel_units)
    high = np.minimum((cell + 1) * cell_units, (pixel + 1) * pixel_units)
    return np.clip(high - low, 0, None).astype(np.float64)


_BLOCK_ELEMENTS = 1 << 22
"""Pixel-cell overlaps gathered per block of rows in the column pooling (bounds its temporary memory)."""


def class_patch_weights(label_map: np.ndarray, grid: tuple[int, int], class_ids: Sequence[int],
                        geometry: ImageGeometry | None = None) -> np.ndarray:
    """`P [n, gh*gw]`: for each class in `class_ids`, the fraction of its pixels in each patch, by area.

    Without `geometry` the grid spans the label map exactly; with it, the grid is that of the resized,
    padded image (`geometry.grid`), so its last cells may reach past the map.

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

    units_y = units_x = (None, None)
    if geometry is not None:
        units_y = (geometry.patch * height, geometry.resized[0])
        units_x = (geometry.patch * width, geometry.resized[1])
    col_overlap = area_overlap_matrix(width, grid_w, *units_x)
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
    row_overlap = area_overlap_matrix(height, grid_h, *units_y)
    row_cell, row_pixel = np.nonzero(row_overlap)
    weighted = by_column[:, row_pixel, :] * row_overlap[row_cell, row_pixel][None, :, None]
    pooled = np.zeros((n_classes, grid_h, grid_w), dtype=np.float64)
    cells_hit = np.unique(row_cell)  # with padding, the last cells may cover no pixel at all
    run_starts = np.searchsorted(row_cell, cells_hit)
    pooled[:, cells_hit] = np.add.reduceat(weighted, run_starts, axis=1)
    pooled = pooled.reshape(n_classes, grid_h * grid_w)
    totals = pooled.sum(axis=1, keepdims=True)
    return np.divide(pooled, totals, out=np.zeros_like(pooled), where=totals > 0)


def block_counts(ids: np.ndarray, geometry: ImageGeometry, n_ids: int) -> np.ndarray:
    """`[n_ids, gh*gw]` pixel counts of each id in each patch, the map resized and padded like the image.

    `ids` `[H, W]` holds values in `0..n_ids-1`, anything else (negative, or >= n_ids, e.g. 255) counts
    for nothing. The map is resized to the image's resized size by nearest neighbour and padded with
    nothing, then each patch-sized block is counted: the reference's pooling of masks and of regions.
    """
    ids = np.asarray(ids, dtype=np.int64)
    resized = resize_labels(ids, geometry.resized)
    padded = pad_labels(resized, geometry.padded, -1)
    gh, gw = geometry.grid
    p = geometry.patch
    cell = (np.arange(gh)[:, None] * gw + np.arange(gw)[None, :]).repeat(p, 0).repeat(p, 1)
    valid = (padded >= 0) & (padded < n_ids)
    bins = padded[valid] * (gh * gw) + cell[valid]
    return np.bincount(bins, minlength=n_ids * gh * gw).reshape(n_ids, gh * gw).astype(np.float64)


def count_patch_weights(label_map: np.ndarray, geometry: ImageGeometry,
                        class_ids: Sequence[int]) -> np.ndarray:
    """`P [n, gh*gw]` by the reference's count pooling (see the module docstring)."""
    positions = np.full(label_map.shape, -1, dtype=np.int64)
    for index, class_id in enumerate(class_ids):
        positions[label_map == class_id] = index
    counts = block_counts(positions, geometry, len(class_ids))
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)


def extract_prototypes(
    features: torch.Tensor,
    label_map: np.ndarray,
    class_ids: Sequence[int],
    geometry: ImageGeometry | None = None,
    pooling: str = DEFAULT_POOLING,
) -> tuple[torch.Tensor, list[int]]:
    """Per-image prototypes of the classes present: `(vectors [n, d] float32, their class ids)`.

    `features` is the backbone's `[gh, gw, d]` grid for the image and `geometry` how that grid sits on
    the image (`backbone.geometry(W, H)`); without a geometry the grid spans the label map exactly and
    pooling is by area. `label_map` `[H, W]` holds class ids; any pixel whose value is not in `class_ids`
    (255: ignore) counts for nothing. Classes with no pixel (after pooling) are left out, so the returned
    ids are those present, in the order given. Vectors are L2-normalised and on the features' device.
    """
    if features.ndim != 3:
        raise ValueError(f"features must be [gh, gw, d], got shape {tuple(features.shape)}")
    if label_map.ndim != 2:
        raise ValueError(f"label_map must be [H, W], got shape {tuple(label_map.shape)}")
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    grid_h, grid_w, dim = features.shape
    if geometry is not None and geometry.grid != (grid_h, grid_w):
        raise ValueError(f"features grid {(grid_h, grid_w)} is not the geometry's {geometry.grid}")
    if geometry is None:
        weights = class_patch_weights(label_map, (grid_h, grid_w), class_ids)
    elif pooling == "count":
        weights = count_patch_weights(label_map, geometry, class_ids)
    else:
        weights = class_patch_weights(label_map, (grid_h, grid_w), class_ids, geometry)
    present = [i for i in range(len(class_ids)) if weights[i].any()]
    flat = features.reshape(grid_h * grid_w, dim).float()
    if not present:
        return flat.new_zeros((0, dim)), []
    pooling_matrix = torch.from_numpy(weights[present]).to(device=flat.device, dtype=torch.float32)
    vectors = torch.nn.functional.normalize(pooling_matrix @ flat, dim=1)
    return vectors, [int(class_ids[i]) for i in present]
