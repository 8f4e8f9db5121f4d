"""Dense, text-aligned patch features from a frozen CLIP ViT, with a sliding window.

Plain CLIP patch tokens localise poorly: the last block's attention mixes every token with a few global
ones. The training-free fixes below change only that last block and keep every weight as trained; the
output tokens then go through `ln_post` and the visual projection, so that they live in the same space
as the text features and can be compared with them by inner product.

Variants (x: tokens entering the last block, h = ln_1(x); q, k, v the block's own projections of h, split
into heads; `out` the block's output projection; `ls_*` its layer scales, identity in CLIP):

- `maskclip` (Zhou et al., ECCV 2022): the attention is replaced by identity, i.e. each token keeps only
  its own value, `a = out(v)`. Residual and MLP are kept: `y = x + ls_1(a)`, `y = y + ls_2(mlp(ln_2(y)))`.
  The paper states the essential change (query and key dropped, the value embedding used directly); keeping
  the residual and MLP follows the reference code (docs/PARITY.md) and the common reimplementations of
  MaskCLIP's ViT variant.
- `clearclip` (Lan et al., ECCV 2024): self-self attention with queries, `softmax(q q^T / sqrt(d_h)) v`,
  then `out`; the residual connection and the MLP are dropped: `y = ls_1(a)`.
- `naclip` (Hajimiri et al., WACV 2025): key-key attention plus a Gaussian neighbourhood bias added to
  the attention logits, `softmax(k k^T / sqrt(d_h) + G) v`, with `G[i, j] = exp(-|p_i - p_j|^2 / (2 s^2))`
  over patch-grid positions, s = 5 patches (the paper's setting). Like the paper's "reduced
  architecture", residual and MLP are dropped. The class token takes part in the attention with no bias
  (its row and column of G are zero). NACLIP also uses no post-processing (no PAMR, no extra model);
  neither do we.

Default: `maskclip`, the reference's choice for OpenCLIP (`configs/clip.yaml`), so that rns computes what the
official RNS code computes. `clearclip` and `naclip` are options: published training-free results put them
ahead of MaskCLIP, but with RNS on top that has not been measured; `benchmarks/accuracy.py` decides once
real weights are at hand.

Sliding window (`WindowConfig`, geometry in `rns.backbone.geometry`): the image is resized (fit inside
`long_side x short_side`, OpenCV-style bilinear), zero-padded to whole patches, and crops of `crop` pixels
are taken every `stride` pixels (the last one flush with the border); the positional embedding is
interpolated bicubically to the crop's grid, each crop's patch features are L2-normalised, and each
patch's feature is the average over the crops that contain it, normalised again. Support images get two
such passes (crops `support_crops`, stride `support_stride`), averaged (`support_features`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from rns.backbone.geometry import ImageGeometry, image_geometry, resize_pixels, window_starts
from rns.choices import DEFAULT_VARIANT, VARIANTS  # in a light module: the CLI lists them
from rns.errors import InputError

NACLIP_GAUSSIAN_STD = 5.0  # in patches, as in the NACLIP paper


@dataclass(frozen=True)
class WindowConfig:
    """How an image is resized and tiled for the ViT (pixels), and crops per forward pass.

    The defaults are the reference's (`configs/clip.yaml`): fit inside 2048 x 448, test-time crops of 448
    every 224, support images as two passes with crops of 448 and 224, both every 112.
    """

    short_side: int = 448
    crop: int = 448
    stride: int = 224
    batch_size: int = 8
    long_side: int = 2048
    support_crops: tuple[int, ...] = (448, 224)
    support_stride: int = 112

    def __post_init__(self) -> None:
        sizes = (self.short_side, self.long_side, self.crop, self.stride, self.batch_size,
                 self.support_stride, *self.support_crops)
        if not self.support_crops or min(sizes) <= 0:
            raise InputError(f"window settings must be positive, got {self}")
        pairs = [(self.crop, self.stride)] + [(c, self.support_stride) for c in self.support_crops]
        for crop, stride in pairs:
            if stride > crop:
                raise InputError(
                    f"window stride {stride} is larger than the crop {crop}: parts of the image would "
                    "be skipped; use a stride no larger than the crop"
                )

    def check_patch(self, patch: int) -> None:
        """Crops and strides must be whole patches so that every crop sits on the same patch grid."""
        values = [("crop", self.crop), ("stride", self.stride), ("support stride", self.support_stride)]
        values += [("support crop", crop) for crop in self.support_crops]
        for name, value in values:
            if value % patch:
                raise InputError(
                    f"window {name} {value} is not a multiple of the model's patch size {patch}; "
                    f"use e.g. {max(patch, round(value / patch) * patch)}"
                )

    def fingerprint(self) -> dict:
        """The settings that change feature values (the batch size does not)."""
        return {"short_side": self.short_side, "long_side": self.long_side, "crop": self.crop,
                "stride": self.stride, "support_crops": list(self.support_crops),
                "support_stride": self.support_stride}


def check_variant(variant: str) -> str:
    """Normalise a variant name, refusing unknown ones with the list of known ones."""
    name = (variant or "").strip().lower()
    if name not in VARIANTS:
        raise InputError(f"feature variant {variant!r} is unknown; choose one of: {', '.join(VARIANTS)}")
    return name


@lru_cache(maxsize=64)
def _gaussian_bias(gh: int, gw: int, std: float) -> torch.Tensor:
    """[1 + gh*gw, 1 + gh*gw] NACLIP neighbourhood bias; the class token (index 0) gets none."""
    rows, cols = torch.meshgrid(torch.arange(gh), torch.arange(gw), indexing="ij")
    pos = torch.stack([rows.flatten(), cols.flatten()], dim=1).float()
    bias = torch.exp(-torch.cdist(pos, pos).pow(2) / (2 * std**2))
    return F.pad(bias, (1, 0, 1, 0))


class DenseFeatureExtractor:
    """Runs an open_clip `VisionTransformer` with a modified last block over sliding-window crops.

    Holds no weights of its own: it reads the visual tower's modules, so the same frozen model also
    serves the text side and the ordinary CLIP forward.
    """

    def __init__(self, visual: torch.nn.Module, variant: str, window: WindowConfig,
                 mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        self.visual = visual
        self.variant = check_variant(variant)
        self.window = window
        self.patch = _patch_size(visual)
        window.check_patch(self.patch)
        _check_supported(visual)
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
        self._pos_cache: dict[tuple[int, int], torch.Tensor] = {}

    @property
    def device(self) -> torch.device:
        return self.visual.conv1.weight.device

    # ----- image -> crops -----------------------------------------------------------------------------

    def geometry(self, width: int, height: int) -> ImageGeometry:
        """Original, resized and padded sizes of a `width x height` image (see `rns.backbone.geometry`)."""
        return image_geometry(width, height, self.window.short_side, self.window.long_side, self.patch)

    def image_tensor(self, image: Image.Image) -> torch.Tensor:
        """`[3, gh*p, gw*p]` normalised pixels: resized, zero-padded to whole patches, then normalised.

        The padding is black in [0, 1] pixel values (the reference pads before its model normalises),
        so after normalisation it holds `-mean / std`, not zero.
        """
        geometry = self.geometry(image.width, image.height)
        resized = resize_pixels(np.asarray(image.convert("RGB"), dtype=np.uint8), geometry.resized)
        height, width = geometry.padded
        pixels = F.pad(resized, (0, width - resized.shape[2], 0, height - resized.shape[1]), value=0.0)
        return (pixels - self.mean) / self.std

    @torch.inference_mode()
    def __call__(self, image: Image.Image) -> torch.Tensor:
        """`[gh, gw, d]` L2-normalised test-time features of the padded grid (see module docstring)."""
        pixels = self.image_tensor(image).to(self.device)
        return self.features_of_pixels(pixels)

    @torch.inference_mode()
    def features_many(self, images: list[Image.Image]) -> list[torch.Tensor]:
        """`__call__` for several images at once: their crops share forwards (see `slide_many`).

        Each image's result equals `self(image)`: the same crops, accumulated in the same order.
        """
        pixels = [self.image_tensor(image).to(self.device) for image in images]
        slid = self.slide_many(pixels, self.window.crop, self.window.stride)
        return [F.normalize(features, dim=-1) for features in slid]

    @torch.inference_mode()
    def features_of_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """Test-time sliding-window features of a normalised, padded `[3, gh*p, gw*p]` tensor."""
        return F.normalize(self.slide(pixels, self.window.crop, self.window.stride), dim=-1)

    @torch.inference_mode()
    def support_features(self, image: Image.Image) -> torch.Tensor:
        """`[gh, gw, d]` features of a support image: one sliding pass per support crop size, averaged.

        Each pass is the count-averaged mean of unit-norm crop features (not renormalised); the mean of
        the passes is normalised per patch. More context per patch at two scales than the test pass.
        """
        pixels = self.image_tensor(image).to(self.device)
        passes = [self.slide(pixels, crop, self.window.support_stride) for crop in self.window.support_crops]
        return F.normalize(torch.stack(passes).mean(dim=0), dim=-1)

    def slide(self, pixels: torch.Tensor, crop: int, stride: int) -> torch.Tensor:
        """`[gh, gw, d]`: each patch the mean of the unit-norm features of the crops covering it."""
        return self.slide_many([pixels], crop, stride)[0]

    def slide_many(self, images: list[torch.Tensor], crop: int, stride: int) -> list[torch.Tensor]:
        """`slide` over several padded images, their crops batched together across images.

        A GPU runs the two crops of one 480 x 360 photo far below its capacity; the crops of several photos
        in one forward keep it busy. Crops of one size (every crop is `crop x crop` unless an image is
        thinner than a crop) go through the ViT together, at most `window.batch_size` per image in one
        forward, so memory grows with the number of images as if each ran alone. Each image's crops are
        accumulated in its own window order, exactly as for that image alone, and a crop's features do
        not depend on the other crops of its forward, so the results are the single-image ones (bit for
        bit on a CPU, as the tests check; a GPU may round a differently shaped batch differently).
        """
        p = self.patch
        totals: list[torch.Tensor | None] = []
        counts: list[torch.Tensor] = []
        by_shape: dict[tuple[int, int], list[tuple[int, int, int]]] = {}  # (ch, cw) -> (image, y, x)
        for index, pixels in enumerate(images):
            gh, gw = pixels.shape[1] // p, pixels.shape[2] // p
            ch, cw = min(crop // p, gh), min(crop // p, gw)
            step = stride // p
            jobs = by_shape.setdefault((ch, cw), [])
            jobs += [(index, y, x) for y in window_starts(gh, ch, step) for x in window_starts(gw, cw, step)]
            totals.append(None)
            counts.append(torch.zeros(gh, gw, 1, device=pixels.device))
        per_forward = self.window.batch_size * len(images)
        for (ch, cw), jobs in by_shape.items():
            for first in range(0, len(jobs), per_forward):
                chunk = jobs[first:first + per_forward]
                crops = torch.stack([images[i][:, y * p:(y + ch) * p, x * p:(x + cw) * p]
                                     for i, y, x in chunk])
                feats = self.crop_features(crops)  # [b, ch, cw, d], normalised
                for (i, y, x), feat in zip(chunk, feats, strict=True):
                    if totals[i] is None:
                        shape = (*counts[i].shape[:2], feats.shape[-1])
                        totals[i] = torch.zeros(shape, device=feat.device, dtype=feats.dtype)
                    totals[i][y:y + ch, x:x + cw] += feat
                    counts[i][y:y + ch, x:x + cw] += 1
        return [total / count for total, count in zip(totals, counts, strict=True)]

    # ----- one batch of equally sized crops ----------------------------------------------------------

    def crop_features(self, crops: torch.Tensor) -> torch.Tensor:
        """[b, ch, cw, d] normalised dense features of a batch of crops `[b, 3, ch*p, cw*p]`."""
        visual = self.visual
        b = crops.shape[0]
        gh, gw = crops.shape[2] // self.patch, crops.shape[3] // self.patch
        weight_dtype = visual.conv1.weight.dtype
        x = visual.conv1(crops.to(weight_dtype)).flatten(2).transpose(1, 2)  # [b, gh*gw, width]
        cls = visual.class_embedding.to(x.dtype).view(1, 1, -1).expand(b, -1, -1)
        x = torch.cat([cls, x], dim=1) + self._positional_embedding(gh, gw).to(x.dtype)
        x = visual.ln_pre(x)
        blocks = visual.transformer.resblocks
        batch_first = getattr(visual.transformer, "batch_first", True)
        if not batch_first:
            x = x.transpose(0, 1)
        for block in blocks[:-1]:
            x = block(x)
        if not batch_first:
            x = x.transpose(0, 1)
        x = self._last_block(blocks[-1], x, gh, gw)
        tokens = visual.ln_post(x[:, 1:]) @ visual.proj
        return F.normalize(tokens.float(), dim=-1).view(b, gh, gw, -1)

    def _positional_embedding(self, gh: int, gw: int) -> torch.Tensor:
        """The learned positional embedding resampled (bicubic) to a `gh x gw` grid; cached per grid."""
        key = (gh, gw)
        if key not in self._pos_cache:
            pos = self.visual.positional_embedding
            cls_pos, grid_pos = pos[:1], pos[1:]
            side_h, side_w = self.visual.grid_size
            if (side_h, side_w) != (gh, gw):
                grid = grid_pos.reshape(1, side_h, side_w, -1).permute(0, 3, 1, 2).float()
                grid = F.interpolate(grid, size=(gh, gw), mode="bicubic", align_corners=False)
                grid_pos = grid.permute(0, 2, 3, 1).reshape(gh * gw, -1).to(pos.dtype)
            self._pos_cache[key] = torch.cat([cls_pos, grid_pos], dim=0)
        return self._pos_cache[key]

    def _last_block(self, block: torch.nn.Module, x: torch.Tensor, gh: int, gw: int) -> torch.Tensor:
        attn = block.attn
        h = block.ln_1(x)
        q, k, v = F.linear(h, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
        if self.variant == "maskclip":
            y = x + block.ls_1(attn.out_proj(v))
            return y + block.ls_2(block.mlp(block.ln_2(y)))
        heads = attn.num_heads
        b, n, width = h.shape

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(b, n, heads, width // heads).transpose(1, 2)  # [b, heads, n, d_h]

        v_heads = split(v)
        if self.variant == "clearclip":
            mixed = F.scaled_dot_product_attention(split(q), split(q), v_heads)
        else:  # naclip
            bias = _gaussian_bias(gh, gw, NACLIP_GAUSSIAN_STD).to(device=x.device, dtype=x.dtype)
            mixed = F.scaled_dot_product_attention(split(k), split(k), v_heads, attn_mask=bias)
        mixed = mixed.transpose(1, 2).reshape(b, n, width)
        return block.ls_1(attn.out_proj(mixed))


def _patch_size(visual: torch.nn.Module) -> int:
    patch = visual.patch_size
    ph, pw = (patch, patch) if isinstance(patch, int) else patch
    if ph != pw:
        raise InputError(f"non-square patches ({ph}x{pw}) are not supported for dense features")
    return int(ph)


def _check_supported(visual: torch.nn.Module) -> None:
    """Dense features need an open_clip ViT with standard attention blocks and a token projection."""
    blocks = getattr(getattr(visual, "transformer", None), "resblocks", None)
    ok = (
        blocks is not None
        and len(blocks) > 0
        and isinstance(getattr(blocks[-1], "attn", None), torch.nn.MultiheadAttention)
        and getattr(visual, "attn_pool", None) is None
        and getattr(visual, "proj", None) is not None
        and hasattr(visual, "positional_embedding")
    )
    if not ok:
        raise InputError(
            f"model with visual tower {type(visual).__name__} is not supported for dense features; "
            "use an open_clip ViT such as ViT-B-16"
        )


__all__ = [
    "DEFAULT_VARIANT",
    "VARIANTS",
    "DenseFeatureExtractor",
    "WindowConfig",
    "check_variant",
]
