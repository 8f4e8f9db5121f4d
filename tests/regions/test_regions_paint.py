"""Painting overlapping masks into a region map, and connected components."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest

from rns.regions.components import connected_components
from rns.regions.paint import compact_ids, paint_regions


def _box(shape, rows, cols):
    mask = np.zeros(shape, dtype=bool)
    mask[rows, cols] = True
    return mask


def test_small_mask_inside_big_one_survives():
    big = _box((10, 10), slice(0, 10), slice(0, 10))
    small = _box((10, 10), slice(2, 4), slice(2, 4))
    region = paint_regions([big, small])
    assert len(np.unique(region)) == 2
    assert len(np.unique(region[small])) == 1
    assert region[small][0] != region[0, 0]
    assert (region[big & ~small] == region[0, 0]).all()


def test_overlap_goes_to_the_larger_mask():
    shape = (10, 12)
    large = _box(shape, slice(0, 10), slice(0, 7))  # 70 px
    smaller = _box(shape, slice(0, 10), slice(5, 11))  # 60 px, 20 of them (33%) inside `large`: not nested
    region = paint_regions([smaller, large])
    overlap = large & smaller
    assert (region[overlap] == region[0, 0]).all()  # the larger mask's id
    assert (region[smaller & ~large] != region[0, 0]).all()


def test_accepts_sam_records_and_is_order_independent():
    shape = (8, 8)
    a = _box(shape, slice(0, 8), slice(0, 5))
    b = _box(shape, slice(0, 8), slice(3, 8))
    b[0, 7] = False
    records = [{"segmentation": a, "area": int(a.sum())}, {"segmentation": b, "area": int(b.sum())}]
    assert (paint_regions(records) == paint_regions([b, a])).all()


def test_uncovered_pixels_become_one_region_per_connected_gap():
    shape = (6, 9)
    wall = _box(shape, slice(0, 6), slice(3, 6))  # splits the image into a left and a right gap
    region = paint_regions([wall])
    assert region.dtype == np.int32
    assert sorted(np.unique(region)) == [0, 1, 2]
    left, right = region[:, :3], region[:, 6:]
    assert len(np.unique(left)) == 1 and len(np.unique(right)) == 1
    assert left[0, 0] != right[0, 0] and left[0, 0] != region[0, 4]


def test_no_masks_gives_one_region_and_empty_masks_are_ignored():
    assert (paint_regions([], shape=(3, 4)) == 0).all()
    empty = np.zeros((3, 4), dtype=bool)
    assert (paint_regions([empty]) == 0).all()


def test_ids_are_compact_after_a_mask_is_fully_overwritten():
    shape = (6, 6)
    first = _box(shape, slice(0, 1), slice(0, 6))  # a strip at the top
    small = _box(shape, slice(2, 4), slice(2, 4))
    big = _box(shape, slice(1, 6), slice(0, 6))
    # nest_fraction above 1 turns nesting off: `small` is wholly overwritten by `big` and its id vanishes.
    region = paint_regions([first, small, big], nest_fraction=1.01)
    assert sorted(np.unique(region)) == [0, 1]
    assert (region[big] == region[5, 5]).all()


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="shape"):
        paint_regions([np.zeros((3, 3), bool), np.zeros((3, 4), bool)])


def test_compact_ids_keeps_order():
    assert compact_ids(np.array([[7, 3], [3, 9]])).tolist() == [[1, 0], [0, 2]]


def _bfs_components(labels: np.ndarray) -> np.ndarray:
    """Reference labelling by breadth-first search, numbered in raster order."""
    out = np.full(labels.shape, -1)
    n = 0
    for start in zip(*np.nonzero(out < 0), strict=True):
        if out[start] >= 0:
            continue
        out[start] = n
        queue = deque([start])
        while queue:
            y, x = queue.popleft()
            for ny, nx in ((y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)):
                inside = 0 <= ny < labels.shape[0] and 0 <= nx < labels.shape[1]
                if inside and out[ny, nx] < 0 and labels[ny, nx] == labels[y, x]:
                    out[ny, nx] = n
                    queue.append((ny, nx))
        n += 1
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_connected_components_match_breadth_first_search(seed):
    labels = np.random.default_rng(seed).integers(0, 3, size=(23, 31))
    components, n = connected_components(labels)
    reference = _bfs_components(labels)
    assert n == reference.max() + 1
    assert (components == reference).all()


def test_connected_components_respect_valid_mask():
    labels = np.zeros((3, 5), dtype=int)
    valid = np.ones((3, 5), dtype=bool)
    valid[:, 2] = False
    components, n = connected_components(labels, valid)
    assert n == 2
    assert (components[:, 2] == -1).all()
    assert components[0, 0] != components[0, 4]


def test_nesting_counts_the_pixels_a_mask_still_owns():
    shape = (10, 12)
    part = _box(shape, slice(2, 6), slice(2, 8))  # 24 px
    neighbour = _box(shape, slice(0, 10), slice(6, 10))  # 40 px, takes 8 of `part`'s pixels (33 %)
    whole = _box(shape, slice(0, 10), slice(0, 7))  # 70 px, holds all 16 pixels `part` still owns
    region = paint_regions([whole, neighbour, part])
    kept = part & ~neighbour
    assert len(np.unique(region[kept])) == 1
    assert region[3, 3] != region[0, 0]  # the part survives inside `whole`
    assert (region[part & neighbour & ~whole] == region[0, 9]).all()
