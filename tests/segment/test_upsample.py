"""Known answers for `rns.segment.upsample`: bilinear weights, the reference's two-step resize, the labels.

Every expected number below is worked out by hand from the half-pixel-centre rule (align_corners=False):
output pixel i samples the input at (i + 0.5) * in/out - 0.5, clamped to the first and last input pixel.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rns.backbone.geometry import ImageGeometry
from rns.segment.upsample import bilinear_matrix, two_step_matrix, upsample_probabilities


def test_bilinear_matrix_doubling_two_pixels():
    # centres -0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped to 1)
    expected = [[1.0, 0.0], [0.75, 0.25], [0.25, 0.75], [0.0, 1.0]]
    assert bilinear_matrix(4, 2).tolist() == expected


def test_bilinear_matrix_same_size_is_identity_and_rows_sum_to_one():
    assert torch.equal(bilinear_matrix(3, 3), torch.eye(3))
    weights = bilinear_matrix(7, 3)
    assert torch.allclose(weights.sum(dim=1), torch.ones(7))


def test_bilinear_matrix_matches_torch_interpolate():
    grid = torch.arange(5, dtype=torch.float32).reshape(1, 1, 1, 5) ** 2
    expected = torch.nn.functional.interpolate(grid, size=(1, 13), mode="bilinear", align_corners=False)
    ours = grid[0, 0, 0] @ bilinear_matrix(13, 5).T
    assert torch.allclose(ours, expected[0, 0, 0], atol=1e-6)


def test_two_step_matrix_crops_the_padded_resize():
    # 2 cells of 2 pixels -> padded 4 pixels (weights as above), cropped to the 3 resized pixels; the
    # resized and original sizes are equal, so the second resize is the identity.
    expected = [[1.0, 0.0], [0.75, 0.25], [0.25, 0.75]]
    assert two_step_matrix(original=3, resized=3, cells=2, patch=2).tolist() == expected


def _grid() -> torch.Tensor:
    """A 1 x 2 grid of 3 classes: class 0 (background) never scores; the left cell is class 1, the right 2."""
    probs = torch.zeros(1, 2, 3)
    probs[0, 0] = torch.tensor([0.0, 0.9, 0.1])
    probs[0, 1] = torch.tensor([0.0, 0.2, 0.8])
    return probs


def test_labels_and_maps_of_a_hand_computed_upsampling():
    labels, maps = upsample_probabilities(_grid(), (1, 4), keep=True)
    # class 1 per column: 0.9, 0.75*0.9 + 0.25*0.2 = 0.725, 0.25*0.9 + 0.75*0.2 = 0.375, 0.2
    # class 2 per column: 0.1, 0.275, 0.625, 0.8
    assert labels.tolist() == [[1, 1, 2, 2]]
    assert maps is not None and maps.dtype == np.float16 and maps.shape == (3, 1, 4)
    np.testing.assert_allclose(maps[1, 0], [0.9, 0.725, 0.375, 0.2], atol=1e-3)
    np.testing.assert_allclose(maps[2, 0], [0.1, 0.275, 0.625, 0.8], atol=1e-3)
    np.testing.assert_array_equal(maps[0], 0)


def test_background_threshold_turns_unsure_pixels_into_class_zero():
    # best scores per column: 0.9, 0.725, 0.625, 0.8; only the third is below 0.7
    labels, maps = upsample_probabilities(_grid(), (1, 4), background_threshold=0.7)
    assert labels.tolist() == [[1, 1, 0, 2]]
    assert maps is None


@pytest.mark.parametrize("band_rows", [1, 2, 256])
def test_bands_do_not_change_the_labels(band_rows):
    generator = torch.Generator().manual_seed(0)
    probs = torch.rand(3, 4, 5, generator=generator)
    whole, _ = upsample_probabilities(probs, (37, 45), band_rows=256)
    banded, _ = upsample_probabilities(probs, (37, 45), band_rows=band_rows)
    np.testing.assert_array_equal(whole, banded)


def test_geometry_uses_the_two_step_resize():
    # original 3 x 3 photo resized to 3 x 3, patch 2: a 2 x 2 grid; columns as in test_two_step_matrix.
    geometry = ImageGeometry(original=(3, 3), resized=(3, 3), patch=2)
    probs = torch.zeros(2, 2, 2)
    probs[:, 0, 0] = 1.0  # class 0 on the left column of cells
    probs[:, 1, 1] = 1.0  # class 1 on the right
    labels, maps = upsample_probabilities(probs, (3, 3), geometry=geometry, keep=True)
    assert maps is not None
    np.testing.assert_allclose(maps[1, 0], [0.0, 0.25, 0.75], atol=1e-3)
    assert labels.tolist() == [[0, 0, 1]] * 3


def test_geometry_that_does_not_fit_is_refused():
    geometry = ImageGeometry(original=(3, 3), resized=(3, 3), patch=2)
    with pytest.raises(ValueError, match="does not fit"):
        upsample_probabilities(torch.zeros(2, 2, 2), (4, 3), geometry=geometry)
