"""Turning a set of overlapping masks (SAM's output) into one region map: every pixel in exactly one region.

Painting rule. Masks are painted from the smallest to the largest, and a larger mask takes the pixels it
shares with a smaller one (smallest first, so larger ones overwrite): where two masks merely
overlap, the larger, usually more stable mask settles the disputed border. One exception keeps the rule
from erasing detail: a smaller mask that lies (almost) wholly inside the larger one is a *part* of it (a
wheel inside a car, a window inside a wall) and keeps its pixels, so objects inside objects survive. "Almost
wholly" means at least `nest_fraction` (default 0.8) of the pixels the smaller mask still owns (after the
masks painted before the larger one) lie inside the larger mask.

Uncovered pixels. Pixels that no mask covers become regions too, one per 4-connected gap: a single
"everything else" region would average the features of unrelated places (a patch of sky and a strip of
road) and force them to share one class, whereas each gap on its own is classified by what it looks like.

Region ids are compacted to 0..R-1, masks first (in painting order), then the gaps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from rns.regions.components import connected_components

NEST_FRACTION = 0.8


def _as_bool_masks(masks: Sequence[np.ndarray | Mapping]) -> list[np.ndarray]:
    """Accept plain boolean masks or SAM's records (`{"segmentation": bool [H, W], ...}`)."""
    out: list[np.ndarray] = []
    for i, mask in enumerate(masks):
        if isinstance(mask, Mapping):
            if "segmentation" not in mask:
                raise ValueError(f"mask record {i} has no 'segmentation' key")
            mask = mask["segmentation"]
        array = np.asarray(mask)
        if array.ndim != 2:
            raise ValueError(
                f"mask {i} must be a 2-D array [H, W] (SAM's output_mode='binary_mask'), got {type(mask)}"
            )
        out.append(array.astype(bool, copy=False))
    return out


def paint_regions(
    masks: Sequence[np.ndarray | Mapping],
    shape: tuple[int, int] | None = None,
    *,
    nest_fraction: float = NEST_FRACTION,
) -> np.ndarray:
    """Paint overlapping masks into an int32 region map `[H, W]` with ids 0..R-1 (see the module doc).

    `masks` are boolean `[H, W]` arrays or SAM automatic-mask records. `shape` is required only when
    `masks` is empty (the whole image then becomes a single region).
    """
    bool_masks = _as_bool_masks(masks)
    if shape is None:
        if not bool_masks:
            raise ValueError("paint_regions needs `shape` when there are no masks")
        shape = bool_masks[0].shape
    shape = (int(shape[0]), int(shape[1]))
    for i, mask in enumerate(bool_masks):
        if mask.shape != shape:
            raise ValueError(f"mask {i} has shape {mask.shape}, expected {shape}")

    areas = np.array([int(m.sum()) for m in bool_masks], dtype=np.int64)
    # Stable sort: equal areas keep their input order, so the result is deterministic.
    order = [i for i in np.argsort(areas, kind="stable") if areas[i] > 0]

    region = np.full(shape, -1, dtype=np.int64)  # painting-order index of the mask owning each pixel
    owned = np.zeros(len(order), dtype=np.int64)  # pixels each painted mask still owns
    for step, mask_index in enumerate(order):
        mask = bool_masks[mask_index]
        owners = region[mask]
        claimed = owners >= 0
        if claimed.any():
            # Share of each earlier region that lies inside this mask: nested regions keep their pixels.
            inside = np.bincount(owners[claimed], minlength=step)
            nested = inside >= nest_fraction * np.maximum(owned[:step], 1)
            taken = claimed.copy()
            taken[claimed] = ~nested[owners[claimed]]
            owned[:step] -= np.bincount(owners[taken], minlength=step)
            owners = np.where(claimed & ~taken, owners, step)
        else:
            owners = np.full_like(owners, step)
        owned[step] = int((owners == step).sum())
        region[mask] = owners

    uncovered = region < 0
    if uncovered.any():
        gaps, _ = connected_components(uncovered.astype(np.int8), valid=uncovered)
        region[uncovered] = len(order) + gaps[uncovered]
    return compact_ids(region)


def compact_ids(region_map: np.ndarray) -> np.ndarray:
    """Renumber the ids present in a region map to 0..R-1, keeping their order; returns int32."""
    present, inverse = np.unique(region_map, return_inverse=True)
    if present.size and present[0] < 0:
        raise ValueError("region map has negative ids")
    return inverse.reshape(region_map.shape).astype(np.int32)
