"""Area-weighted pooling of patch features into regions, and regions back to pixels."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rns.regions.pooling import (
    pool_regions,
    region_patch_weights,
    region_scores_to_pixels,
    regions_to_pixels,
)


def _brute_force_weights(region_map: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """A_rj by explicit interval overlaps of every pixel square with every patch rectangle (exact)."""
    height, width = region_map.shape
    grid_h, grid_w = grid
    n = int(region_map.max()) + 1
    area = np.zeros((n, grid_h * grid_w))
    for y in range(height):
        for x in range(width):
            for i in range(grid_h):
                top, bottom = Fraction(i * height, grid_h), Fraction((i + 1) * height, grid_h)
                dy = max(Fraction(0), min(bottom, Fraction(y + 1)) - max(top, Fraction(y)))
                for j in range(grid_w):
                    left, right = Fraction(j * width, grid_w), Fraction((j + 1) * width, grid_w)
                    dx = max(Fraction(0), min(right, Fraction(x + 1)) - max(left, Fraction(x)))
                    area[region_map[y, x], i * grid_w + j] += float(dy * dx)
    return area / area.sum(axis=1, keepdims=True)


@pytest.mark.parametrize(("shape", "grid"), [((12, 16), (3, 4)), ((7, 10), (3, 4)), ((11, 9), (4, 2))])
def test_weights_are_area_fractions(shape, grid):
    region_map = np.random.default_rng(0).integers(0, 5, size=shape)
    region_map[0, 0], region_map[-1, -1] = 0, 4  # every id present
    weights = region_patch_weights(region_map, grid).numpy()
    np.testing.assert_allclose(weights, _brute_force_weights(region_map, grid), atol=1e-6)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-6)


def test_constant_feature_per_region_is_returned():
    # Regions aligned with patch blocks; every patch of a region carries that region's feature.
    grid_h, grid_w, dim = 4, 6, 8
    patch_region = np.random.default_rng(1).integers(0, 3, size=(grid_h, grid_w))
    patch_region[0, 0], patch_region[0, 1], patch_region[0, 2] = 0, 1, 2
    region_map = np.kron(patch_region, np.ones((5, 5), dtype=np.int64))  # 20 x 30 image
    region_features = F.normalize(torch.randn(3, dim), dim=-1)
    features = region_features[torch.from_numpy(patch_region)]
    pooled = pool_regions(features, region_map)
    torch.testing.assert_close(pooled, region_features, atol=1e-5, rtol=0)


def test_pooled_feature_is_normalised_weighted_mean():
    features = F.normalize(torch.randn(3, 4, 16), dim=-1)
    region_map = np.random.default_rng(2).integers(0, 6, size=(15, 17))
    region_map[0, :6] = np.arange(6)
    expected = F.normalize(
        torch.from_numpy(_brute_force_weights(region_map, (3, 4))).float() @ features.reshape(12, 16), dim=-1
    )
    torch.testing.assert_close(pool_regions(features, region_map), expected, atol=1e-5, rtol=0)


def test_grid_finer_than_image_is_refused():
    with pytest.raises(ValueError, match="finer"):
        region_patch_weights(np.zeros((3, 3), dtype=np.int64), (4, 4))


def test_regions_to_pixels_gives_each_region_one_class():
    region_map = np.random.default_rng(3).integers(0, 4, size=(9, 11))
    region_labels = np.array([2, 0, 1, 2])
    labels = regions_to_pixels(region_labels, region_map)
    assert labels.shape == region_map.shape
    for r in range(4):
        assert (labels[region_map == r] == region_labels[r]).all()
    assert (regions_to_pixels(torch.from_numpy(region_labels), region_map) == labels).all()


def test_region_scores_to_pixels_layout_is_classes_first():
    region_map = np.array([[0, 1], [1, 2]])
    scores = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]])
    pixels = region_scores_to_pixels(scores, region_map)
    assert pixels.shape == (2, 2, 2)
    torch.testing.assert_close(pixels[:, 1, 0], scores[1])
    torch.testing.assert_close(pixels[:, 0, 0], scores[0])


def test_region_ids_beyond_labels_are_refused():
    with pytest.raises(ValueError, match="only 2"):
        regions_to_pixels(np.array([0, 1]), np.array([[0, 2]]))
