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
  the residual and MLP follows DESIGN.md and the common reimplementations of MaskCLIP's ViT variant.
- `clearclip` (Lan et al., ECCV 2024): self-self attention with queries, `softmax(q q^T / sqrt(d_h)) v`,
  then `out`; the residual connection and the MLP are dropped: `y = ls_1(a)`.
- `naclip` (Hajimiri et al., WACV 2025): key-key attention plus a Gaussian neighbourhood bias added to
  the attention logits, `softmax(k k^T / sqrt(d_h) + G) v`, with `G[i, j] = exp(-|p_i - p_j|^2 / (2 s^2))`
  over patch-grid positions, s = 5 patches (the paper's setting). Like the paper's "reduced
  architecture", residual and MLP are dropped. The class token takes part in the attention with no bias
  (its row and column of G are zero). NACLIP also uses no post-processing (no PAMR, no extra model);
  neither do we.

Default: `naclip`. The issue asks for "whichever measures best"; no real weights can be obtained on the
machine this was written on, so it could not be measured here. Published training-free results (ViT-B/16,
no post-processing, averaged over the usual eight benchmarks) put NACLIP and ClearCLIP within about a
point of each other, NACLIP ahead, and MaskCLIP roughly ten mIoU lower. The RNS paper's reference figures
use `maskclip`; pass `variant="maskclip"` (or RNS_VARIANT=maskclip) to reproduce them. Revisit with a
benchmark on real weights.

Sliding window (`WindowConfig`): the image is resized so that its short side is `short_side` pixels and
each side is a whole number of patches (rounded to the nearest; the aspect ratio moves by under half a
patch), crops of `crop` pixels are taken every `stride` pixels (the last one flush with the border), the
positional embedding is interpolated bicubically to the crop's grid, and each patch's feature is the
average of the L2-normalised features of the crops that contain it, normalised again. Patch (i, j) of the
resulting `gh x gw` grid therefore covers exactly rows `i*H/gh ... (i+1)*H/gh` and columns
`j*W/gw ... (j+1)*W/gw` of the original `H x W` image.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from rns.choices import DEFAULT_VARIANT, VARIANTS  # in a light module: the CLI lists them
from rns.errors import InputError

NACLIP_GAUSSIAN_STD = 5.0  # in patches, as in the NACLIP paper


@dataclass(frozen=True)
class WindowConfig:
    """How an image is tiled for the ViT: resize, crop size, stride (pixels), crops per forward pass."""

    short_side: int = 448
    crop: int = 448
    stride: int = 224
    batch_size: int = 8

    def __post_init__(self) -> None:
        if min(self.short_side, self.crop, self.stride, self.batch_size) <= 0:
            raise InputError(f"window settings must be positive, got {self}")
        if self.stride > self.crop:
            raise InputError(
                f"window stride {self.stride} is larger than the crop {self.crop}: parts of the image would "
                "be skipped; use a stride no larger than the crop"
            )

    def check_patch(self, patch: int) -> None:
        """Crops and strides must be whole patches so that every crop sits on the same patch grid."""
        for name in ("crop", "stride"):
            value = getattr(self, name)
            if value % patch:
                raise InputError(
                    f"window {name} {value} is not a multiple of the model's patch size {patch}; "
                    f"use e.g. {max(patch, round(value / patch) * patch)}"
                )

    def fingerprint(self) -> dict:
        """The settings that change feature values (the batch size does not)."""
        return {"short_side": self.short_side, "crop": self.crop, "stride": self.stride}


def check_variant(variant: str) -> str:
    """Normalise a variant name, refusing unknown ones with the list of known ones."""
    name = (variant or "").strip().lower()
    if name not in VARIANTS:
        raise InputError(f"feature variant {variant!r} is unknown; choose one of: {', '.join(VARIANTS)}")
    return name


def resized_grid(width: int, height: int, short_side: int, patch: int) -> tuple[int, int]:
    """Patch grid (gh, gw) of the image resized to `short_side`, each side a whole number of patches."""
    scale = short_side / min(width, height)
    gh = max(1, round(height * scale / patch))
    gw = max(1, round(width * scale / patch))
    return gh, gw


def window_starts(length: int, crop: int, stride: int) -> list[int]:
    """Start offsets (in patches) of crops along one axis; the last crop ends flush with the border."""
    if length <= crop:
        return [0]
    starts = list(range(0, length - crop + 1, stride))
    if starts[-1] + crop < length:
        starts.append(length - crop)
    return starts


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

    def image_tensor(self, image: Image.Image) -> torch.Tensor:
        """[3, gh*p, gw*p] normalised pixels of the image resized onto its patch grid."""
        gh, gw = resized_grid(image.width, image.height, self.window.short_side, self.patch)
        resized = image.convert("RGB").resize((gw * self.patch, gh * self.patch), Image.BICUBIC)
        pixels = torch.from_numpy(np.asarray(resized, dtype=np.uint8).copy()).permute(2, 0, 1)
        return (pixels.float().div_(255.0) - self.mean) / self.std

    @torch.inference_mode()
    def __call__(self, image: Image.Image) -> torch.Tensor:
        """[gh, gw, d] L2-normalised features covering the whole image (see module docstring)."""
        pixels = self.image_tensor(image).to(self.device)
        return self.features_of_pixels(pixels)

    @torch.inference_mode()
    def features_of_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """Sliding-window features of an already resized, normalised `[3, gh*p, gw*p]` tensor."""
        p = self.patch
        gh, gw = pixels.shape[1] // p, pixels.shape[2] // p
        ch, cw = min(self.window.crop // p, gh), min(self.window.crop // p, gw)
        stride = self.window.stride // p
        boxes = [(y, x) for y in window_starts(gh, ch, stride) for x in window_starts(gw, cw, stride)]
        total = None
        counts = torch.zeros(gh, gw, 1, device=pixels.device)
        for first in range(0, len(boxes), self.window.batch_size):
            chunk = boxes[first:first + self.window.batch_size]
            crops = torch.stack([pixels[:, y * p:(y + ch) * p, x * p:(x + cw) * p] for y, x in chunk])
            feats = self.crop_features(crops)  # [b, ch, cw, d], normalised
            if total is None:
                total = torch.zeros(gh, gw, feats.shape[-1], device=pixels.device, dtype=feats.dtype)
            for (y, x), feat in zip(chunk, feats, strict=True):
                total[y:y + ch, x:x + cw] += feat
                counts[y:y + ch, x:x + cw] += 1
        return F.normalize(total / counts, dim=-1)

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
    "resized_grid",
    "window_starts",
]
