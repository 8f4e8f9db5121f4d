"""Region proposals (SAM masks or SLIC superpixels), painting, area pooling and the proposal cache.

With regions on, the pipeline classifies regions instead of patches: it pools patch features into each
region (`pool_regions`), classifies the region features, and gives every pixel its region's class
(`regions_to_pixels`, `region_scores_to_pixels`), which makes boundaries follow image edges.

```python
proposer = build_region_proposer("superpixels")          # or "sam", sam_checkpoint="sam_vit_b_01ec64.pth"
region_map = proposer.propose(image)                      # int32 [H, W], ids 0..R-1
region_features = pool_regions(features, region_map)      # [gh, gw, d] -> [R, d], L2-normalised
labels = regions_to_pixels(region_labels, region_map)     # [R] -> [H, W]
```
"""

from __future__ import annotations

import os
from typing import Any, Protocol, runtime_checkable

import numpy as np
from PIL import Image

from rns.errors import InputError
from rns.paths import cache_dir as default_cache_dir
from rns.regions.cache import RegionCache
from rns.regions.paint import compact_ids, paint_regions
from rns.regions.pooling import pool_regions, region_patch_weights, region_scores_to_pixels, regions_to_pixels
from rns.regions.sam import SAM_CHECKPOINT_ENV, SamProposer, SamSettings, resolve_sam_checkpoint
from rns.regions.superpixels import SlicSettings, slic_superpixels

REGION_KINDS = ("none", "sam", "superpixels")


@runtime_checkable
class RegionProposer(Protocol):
    """Anything that turns an image into a region map; `name` + `settings_key()` identify its output."""

    name: str

    def settings_key(self) -> str: ...

    def propose(self, image: Image.Image) -> np.ndarray: ...


class SuperpixelProposer:
    """SLIC superpixels (`rns.regions.superpixels`): no weights, ~0.2 s per 480x360 image on a CPU core."""

    name = "superpixels"

    def __init__(self, **settings: Any) -> None:
        try:
            self.settings = SlicSettings(**settings)
        except TypeError as error:
            known = ", ".join(SlicSettings.__dataclass_fields__)
            raise InputError(f"unknown superpixel setting in {sorted(settings)}; known: {known}") from error
        except ValueError as error:
            raise InputError(f"bad superpixel setting: {error}") from error

    def settings_key(self) -> str:
        return self.settings.key()

    def propose(self, image: Image.Image) -> np.ndarray:
        return slic_superpixels(np.asarray(image.convert("RGB")), self.settings)


class CachedProposer:
    """Wraps a proposer with the on-disk cache: same interface, each image proposed at most once."""

    def __init__(self, proposer: RegionProposer, cache: RegionCache) -> None:
        self.proposer = proposer
        self.cache = cache
        self.name = proposer.name

    def settings_key(self) -> str:
        return self.proposer.settings_key()

    def propose(self, image: Image.Image) -> np.ndarray:
        key = self.cache.key(image, self.proposer.name, self.proposer.settings_key())
        cached = self.cache.load(key, (image.height, image.width))
        if cached is not None:
            return cached
        region_map = self.proposer.propose(image)
        self.cache.save(key, region_map)
        return region_map


def build_region_proposer(
    kind: str,
    *,
    sam_checkpoint: str | os.PathLike | None = None,
    device: str = "auto",
    cache_dir: str | os.PathLike | None = None,
    cache: bool | None = None,
    **settings: Any,
) -> RegionProposer | None:
    """The proposer for `--regions KIND`; None for "none" (patches are classified directly).

    `settings` override the proposer's defaults (`SamSettings` / `SlicSettings` field names; `model_type`
    for SAM). `cache=None` caches SAM proposals (seconds to minutes each) but not superpixels (~0.2 s to
    recompute, not worth ~20 KB of disk per image); `cache_dir` defaults to
    `rns.paths.cache_dir() / "regions"`.
    Raises `WeightsUnavailableError` for SAM without a checkpoint file, `InputError` for bad settings.
    """
    choice = (kind or "none").strip().lower()
    if choice == "none":
        return None
    proposer: RegionProposer
    if choice == "sam":
        proposer = SamProposer(sam_checkpoint, device=device, **settings)
    elif choice == "superpixels":
        proposer = SuperpixelProposer(**settings)
    else:
        raise InputError(f"--regions {kind!r} is not a region kind; choose one of: {', '.join(REGION_KINDS)}")
    if cache is None:
        cache = choice == "sam"
    if not cache:
        return proposer
    directory = cache_dir if cache_dir is not None else default_cache_dir() / "regions"
    return CachedProposer(proposer, RegionCache(directory))


__all__ = [
    "REGION_KINDS",
    "SAM_CHECKPOINT_ENV",
    "CachedProposer",
    "RegionCache",
    "RegionProposer",
    "SamProposer",
    "SamSettings",
    "SlicSettings",
    "SuperpixelProposer",
    "build_region_proposer",
    "compact_ids",
    "paint_regions",
    "pool_regions",
    "region_patch_weights",
    "region_scores_to_pixels",
    "regions_to_pixels",
    "resolve_sam_checkpoint",
    "slic_superpixels",
]
