"""The backbone on the tiny random model: shapes, normalisation, sliding window, text cache, fingerprint.

These prove wiring, not accuracy: the weights are random. Accuracy is `test_backbone_real.py`'s job.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from rns.backbone import (
    RANDOM_LABEL,
    TINY_TEST_MODEL,
    VARIANTS,
    WindowConfig,
    build_backbone,
)
from rns.backbone.geometry import image_geometry, window_starts
from rns.errors import InputError


def _photo(width: int, height: int, seed: int = 0) -> Image.Image:
    """A smooth random colour field (a little more image-like than white noise)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(max(2, height // 40), max(2, width // 40), 3), dtype=np.uint8)
    return Image.fromarray(small).resize((width, height), Image.BILINEAR)


@pytest.fixture(scope="module")
def variant_backbones():
    return {v: build_backbone(TINY_TEST_MODEL, "random", variant=v, device="cpu") for v in VARIANTS}


def test_tiny_model_is_labelled_random_and_fingerprinted(tiny_backbone):
    assert tiny_backbone.weights_label == RANDOM_LABEL == "random init: for tests only"
    assert tiny_backbone.dim == 32
    assert tiny_backbone.device == torch.device("cpu")
    fingerprint = tiny_backbone.fingerprint
    assert json.loads(json.dumps(fingerprint)) == fingerprint
    assert fingerprint["model"] == TINY_TEST_MODEL
    assert fingerprint["weights"] == {"random_init_seed": 0}
    assert (fingerprint["short_side"], fingerprint["crop"], fingerprint["stride"]) == (448, 448, 224)
    assert tiny_backbone.spec.model == TINY_TEST_MODEL
    assert not any(p.requires_grad for p in tiny_backbone.model.parameters())


def test_random_init_is_reproducible_across_builds(tiny_backbone):
    again = build_backbone(TINY_TEST_MODEL, "random", variant=tiny_backbone.variant, device="cpu")
    image = _photo(200, 150)
    assert torch.equal(again.dense_features(image), tiny_backbone.dense_features(image))
    assert again.fingerprint == tiny_backbone.fingerprint


@pytest.mark.parametrize("variant", VARIANTS)
def test_dense_features_shape_and_norm(variant_backbones, variant):
    backbone = variant_backbones[variant]
    feats = backbone.dense_features(_photo(480, 360))
    assert feats.shape == (28, 38, 32)  # 480x360 -> 597x448, padded to 608x448: 28 x 38 patches
    assert feats.dtype == torch.float32
    assert torch.isfinite(feats).all()
    assert torch.allclose(feats.norm(dim=-1), torch.ones(28, 38), atol=1e-5)
    assert backbone.fingerprint["variant"] == variant


def test_variants_give_different_features(variant_backbones):
    image = _photo(240, 240)
    feats = {v: b.dense_features(image) for v, b in variant_backbones.items()}
    assert not torch.allclose(feats["maskclip"], feats["clearclip"], atol=1e-3)
    assert not torch.allclose(feats["clearclip"], feats["naclip"], atol=1e-3)


def test_maskclip_matches_open_clip_forward_by_hand(variant_backbones):
    """At the model's native 224 px the shared path (patch embed, positions, first blocks, ln_post, proj)
    must agree with open_clip's own forward; the last block is written out from the MaskCLIP recipe."""
    backbone = variant_backbones["maskclip"]
    visual = backbone.model.visual
    pixels = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        out = visual.forward_intermediates(pixels, indices=[len(visual.transformer.resblocks) - 2],
                                           intermediates_only=True, output_fmt="NLC",
                                           output_extra_tokens=True)
        x = torch.cat([out["image_intermediates_prefix"][0], out["image_intermediates"][0]], dim=1)
        last = visual.transformer.resblocks[-1]
        v = F.linear(last.ln_1(x), last.attn.in_proj_weight, last.attn.in_proj_bias).chunk(3, dim=-1)[2]
        y = x + last.attn.out_proj(v)
        y = y + last.mlp(last.ln_2(y))
        expected = F.normalize(visual.ln_post(y[:, 1:]) @ visual.proj, dim=-1).view(14, 14, -1)
        got = backbone._dense.crop_features(pixels)[0]
    assert torch.allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize(("width", "height", "grid"), [(480, 360, (28, 38)), (300, 900, (84, 28)),
                                                       (448, 448, (28, 28)), (100, 50, (28, 56))])
def test_grid_follows_the_contract(tiny_backbone, width, height, grid):
    """Resized to fit 2048 x 448 (480x360 -> 597x448), padded to whole patches (-> 608x448: 28 x 38)."""
    assert image_geometry(width, height, 448, 2048, 16).grid == grid
    assert tiny_backbone.grid_size(width, height) == grid
    assert tuple(tiny_backbone.dense_features(_photo(width, height)).shape[:2]) == grid


def test_windows_cover_every_patch_and_stay_inside():
    for length in (1, 13, 28, 29, 37, 42, 56, 100):
        covered = np.zeros(length, dtype=int)
        for start in window_starts(length, 28, 14):
            end = min(start + 28, length)
            assert 0 <= start < end <= length
            covered[start:end] += 1
        assert covered.min() >= 1, length


def test_crop_sized_image_equals_a_single_pass(tiny_backbone):
    image = _photo(448, 448, seed=5)
    extractor = tiny_backbone._dense
    pixels = extractor.image_tensor(image)
    with torch.inference_mode():
        single = extractor.crop_features(pixels[None])[0]
    assert torch.allclose(tiny_backbone.dense_features(image), single, atol=1e-6)


def test_sliding_window_averages_overlaps(tiny_backbone):
    """A 448 x 672 image is two crops at columns 0 and 14 (in patches): each patch is the normalised mean
    of the crops containing it."""
    image = _photo(672, 448, seed=7)
    extractor = tiny_backbone._dense
    pixels = extractor.image_tensor(image)
    assert pixels.shape[1:] == (448, 672)
    with torch.inference_mode():
        left, right = extractor.crop_features(torch.stack([pixels[:, :, :448], pixels[:, :, 224:]]))
    expected = torch.zeros(28, 42, 32)
    counts = torch.zeros(28, 42, 1)
    expected[:, :28] += left
    counts[:, :28] += 1
    expected[:, 14:] += right
    counts[:, 14:] += 1
    expected = F.normalize(expected / counts, dim=-1)
    assert torch.allclose(tiny_backbone.dense_features(image), expected, atol=1e-5)


def test_batch_size_does_not_change_features(tiny_backbone):
    one_by_one = build_backbone(TINY_TEST_MODEL, "random", variant=tiny_backbone.variant, device="cpu",
                                window=WindowConfig(batch_size=1))
    image = _photo(700, 500, seed=2)
    assert torch.allclose(one_by_one.dense_features(image), tiny_backbone.dense_features(image), atol=1e-5)
    assert one_by_one.fingerprint == tiny_backbone.fingerprint  # batch size is not a feature setting


def test_window_settings_change_the_fingerprint():
    other = build_backbone(TINY_TEST_MODEL, "random", variant="naclip", device="cpu",
                           window=WindowConfig(short_side=224, crop=224, stride=112))
    assert other.fingerprint["short_side"] == 224
    assert other.dense_features(_photo(480, 360)).shape == (14, 19, 32)


def test_bad_window_settings_are_one_line_errors():
    with pytest.raises(InputError, match="stride"):
        WindowConfig(crop=224, stride=448)
    with pytest.raises(InputError, match="multiple of the model's patch size 16"):
        build_backbone(TINY_TEST_MODEL, "random", device="cpu", window=WindowConfig(crop=450, stride=224))


def test_unknown_variant_and_model_are_one_line_errors():
    with pytest.raises(InputError, match="maskclip, clearclip, naclip") as excinfo:
        build_backbone(TINY_TEST_MODEL, "random", variant="sclip", device="cpu")
    assert "\n" not in str(excinfo.value)
    with pytest.raises(InputError, match="not an open_clip model") as excinfo:
        build_backbone("ViT-Q-99", "random", device="cpu")
    assert "\n" not in str(excinfo.value)
