"""Area-weighted prototype extraction against a brute-force, pixel-by-pixel reference."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch

from rns.teach.mask_conventions import IGNORE_LABEL
from rns.teach.prototypes import area_overlap_matrix, class_patch_weights, extract_prototypes


def _reference_weights(label_map: np.ndarray, grid: tuple[int, int], class_id: int) -> np.ndarray:
    """P_jc by definition: each class pixel's unit area split over the patches it overlaps, exactly."""
    height, width = label_map.shape
    grid_h, grid_w = grid
    area = [[Fraction(0)] * grid_w for _ in range(grid_h)]
    for y, x in zip(*np.nonzero(label_map == class_id), strict=True):
        for i in range(grid_h):
            top, bottom = Fraction(i * height, grid_h), Fraction((i + 1) * height, grid_h)
            dy = max(Fraction(0), min(bottom, Fraction(int(y) + 1)) - max(top, Fraction(int(y))))
            if not dy:
                continue
            for j in range(grid_w):
                left, right = Fraction(j * width, grid_w), Fraction((j + 1) * width, grid_w)
                dx = max(Fraction(0), min(right, Fraction(int(x) + 1)) - max(left, Fraction(int(x))))
                area[i][j] += dy * dx
    total = sum(sum(row) for row in area)
    return np.array([[float(a / total) for a in row] for row in area]).ravel()


@pytest.mark.parametrize(
    ("size", "grid"),
    [((12, 8), (3, 2)), ((13, 7), (4, 3)), ((5, 9), (7, 4)), ((1, 1), (2, 3))],
    ids=["divisible", "non-divisible", "image-smaller-than-grid", "one-pixel"],
)
def test_weights_match_brute_force(size: tuple[int, int], grid: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(size) + sum(grid))
    label_map = rng.integers(0, 3, size=size)
    label_map[rng.random(size) < 0.2] = IGNORE_LABEL
    label_map.flat[0] = 1  # class 1 is present even in the one-pixel case
    weights = class_patch_weights(label_map, grid, [0, 1, 2])
    for row, class_id in enumerate([0, 1, 2]):
        if (label_map == class_id).any():
            expected = _reference_weights(label_map, grid, class_id)
            np.testing.assert_allclose(weights[row], expected, atol=1e-12)
        else:
            assert not weights[row].any()


def test_overlap_matrix_splits_every_pixel_exactly() -> None:
    overlap = area_overlap_matrix(pixels=7, cells=3)
    # in units of 1/cells pixel: each pixel's column sums to `cells`, each cell's row to `pixels`.
    np.testing.assert_array_equal(overlap.sum(axis=0), np.full(7, 3.0))
    np.testing.assert_array_equal(overlap.sum(axis=1), np.full(3, 7.0))
    assert overlap[0, 2] == 1 and overlap[1, 2] == 2  # pixel 2 spans [2, 3); cell 0 ends at 7/3


def test_prototypes_are_normalised_weighted_means_and_skip_absent_classes() -> None:
    generator = torch.Generator().manual_seed(0)
    features = torch.nn.functional.normalize(torch.randn(3, 4, 6, generator=generator), dim=-1)
    label_map = np.full((10, 13), IGNORE_LABEL)
    label_map[:4, :5] = 7
    label_map[6:, 9:] = 2
    vectors, present = extract_prototypes(features, label_map, [2, 5, 7])
    assert present == [2, 7]
    assert vectors.shape == (2, 6) and vectors.dtype == torch.float32
    flat = features.reshape(12, 6).double()
    for vector, class_id in zip(vectors, present, strict=True):
        expected = torch.from_numpy(_reference_weights(label_map, (3, 4), class_id)) @ flat
        torch.testing.assert_close(vector.double(), expected / expected.norm(), atol=1e-6, rtol=0)


def test_ignore_pixels_change_nothing() -> None:
    generator = torch.Generator().manual_seed(1)
    features = torch.nn.functional.normalize(torch.randn(2, 2, 5, generator=generator), dim=-1)
    label_map = np.zeros((8, 8), dtype=np.int64)
    label_map[:, 4:] = 1
    with_ignore = label_map.copy()
    with_ignore[:, 6:] = 255  # relabel half of class 1 as ignore: class 0 must not move
    before, _ = extract_prototypes(features, label_map, [0, 1])
    after, _ = extract_prototypes(features, with_ignore, [0, 1])
    torch.testing.assert_close(before[0], after[0])
    # class 1 now only covers columns 4..5, all inside the right-hand patches
    torch.testing.assert_close(after[1], torch.nn.functional.normalize(features[:, 1].sum(0), dim=0))


def test_no_class_present_gives_empty_result() -> None:
    vectors, present = extract_prototypes(torch.ones(2, 2, 3), np.full((4, 4), 255), [0, 1])
    assert vectors.shape == (0, 3) and present == []
