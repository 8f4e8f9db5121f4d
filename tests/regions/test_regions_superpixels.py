"""SLIC superpixels: colour edges respected, compact ids, connected regions, full-size maps."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from rns.errors import InputError
from rns.regions import SuperpixelProposer, build_region_proposer
from rns.regions.components import connected_components
from rns.regions.superpixels import SlicSettings, rgb_to_lab, slic_superpixels

RED, BLUE = (200, 60, 40), (40, 90, 200)


def _two_halves(height: int = 120, width: int = 160, split: int = 67) -> np.ndarray:
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[:, :split] = RED
    image[:, split:] = BLUE
    return image


def _assert_no_region_straddles(region_map: np.ndarray, side: np.ndarray) -> None:
    for r in np.unique(region_map):
        assert len(np.unique(side[region_map == r])) == 1, f"region {r} crosses the colour edge"


def test_regions_never_straddle_a_vertical_colour_edge():
    image = _two_halves()
    region_map = slic_superpixels(image, SlicSettings(n_segments=40))
    side = np.zeros(image.shape[:2], dtype=int)
    side[:, 67:] = 1
    _assert_no_region_straddles(region_map, side)
    assert region_map.max() + 1 > 10


def test_regions_never_straddle_a_diagonal_colour_edge():
    height, width = 96, 128
    yy, xx = np.mgrid[:height, :width]
    side = (xx > 0.8 * yy + 30).astype(int)
    image = np.where(side[..., None] == 1, np.array(BLUE, np.uint8), np.array(RED, np.uint8))
    region_map = slic_superpixels(image.astype(np.uint8), SlicSettings(n_segments=60))
    _assert_no_region_straddles(region_map, side)


def test_ids_compact_regions_connected_and_deterministic():
    rng = np.random.default_rng(0)
    image = (rng.random((60, 80, 3)) * 40 + _two_halves(60, 80, 30) * 0.8).astype(np.uint8)
    first = slic_superpixels(image, SlicSettings(n_segments=30))
    assert first.dtype == np.int32 and first.shape == (60, 80)
    ids = np.unique(first)
    assert list(ids) == list(range(len(ids)))
    _, pieces = connected_components(first)
    assert pieces == len(ids)
    assert (slic_superpixels(image, SlicSettings(n_segments=30)) == first).all()


def test_large_image_is_segmented_downscaled_but_mapped_full_size():
    image = _two_halves(200, 300, 120)
    region_map = slic_superpixels(image, SlicSettings(n_segments=20, max_pixels=5_000))
    assert region_map.shape == (200, 300)
    side = np.zeros((200, 300), dtype=int)
    side[:, 120:] = 1
    # Nearest-neighbour upscaling may shift the edge by about one downscaled pixel (~4 px here).
    wrong = sum(
        min((side[region_map == r] == s).sum() for s in (0, 1)) for r in np.unique(region_map)
    )
    assert wrong <= 4 * 200


def test_lab_of_reference_colours():
    lab = rgb_to_lab(np.array([[[255, 255, 255], [0, 0, 0], [255, 0, 0]]], dtype=np.uint8)).numpy()[0]
    np.testing.assert_allclose(lab[0], [100, 0, 0], atol=0.1)
    np.testing.assert_allclose(lab[1], [0, 0, 0], atol=0.1)
    np.testing.assert_allclose(lab[2], [53.24, 80.09, 67.20], atol=0.1)  # sRGB red, D65


def test_proposer_takes_pil_images_and_refuses_bad_settings():
    proposer = build_region_proposer("superpixels", n_segments=25)
    assert isinstance(proposer, SuperpixelProposer)
    image = Image.fromarray(_two_halves(40, 50, 20)).convert("L")  # grey input is converted to RGB
    assert proposer.propose(image).shape == (40, 50)
    assert "n_segments=25" in proposer.settings_key()
    with pytest.raises(InputError, match="unknown superpixel setting"):
        SuperpixelProposer(segments=10)
    with pytest.raises(InputError, match="must be positive"):
        SuperpixelProposer(n_segments=0)
