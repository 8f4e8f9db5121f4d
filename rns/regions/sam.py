"""Region proposals from Segment Anything (SAM): automatic masks painted into a region map.

Weights. SAM weights are a local file (`--sam-checkpoint FILE` or `RNS_SAM_CHECKPOINT`); rns never
downloads them. The model size (vit_b, vit_l, vit_h) is read from the checkpoint itself (the width of the
patch embedding), so a user only names the file; a model type given explicitly is checked against it.
The model is loaded on the first `propose` call, so a run whose every image is already in the region cache
never pays for it.

CPU defaults. SAM's own defaults (32 x 32 points, tuned for ViT-H on a GPU) cost minutes per image on a
CPU, where each prompt point takes ~0.15-0.2 s with ViT-B; so on a CPU the point grid is 16 x 16, on a GPU
32 x 32, with no extra crop layers. Thresholds follow the values commonly used with ViT-B (0.86 predicted
IoU, 0.92 stability) rather than the stricter ViT-H ones. Every setting can be overridden by keyword.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from rns.devices import resolve_device
from rns.errors import InputError, WeightsUnavailableError
from rns.regions.paint import NEST_FRACTION, paint_regions

SAM_CHECKPOINT_ENV = "RNS_SAM_CHECKPOINT"
SAM_MODEL_TYPES = ("vit_b", "vit_l", "vit_h")
# Width of the image encoder's patch embedding for each official model size.
_EMBED_DIM_TO_TYPE = {768: "vit_b", 1024: "vit_l", 1280: "vit_h"}
_WAYS_OUT = (
    "download the official ViT-B SAM checkpoint (sam_vit_b_01ec64.pth, from the segment-anything project) "
    "once and pass --sam-checkpoint FILE, or use --regions superpixels (no weights needed)"
)


@dataclass(frozen=True)
class SamSettings:
    """SamAutomaticMaskGenerator settings plus the painting rule; `points_per_side=None` picks by device."""

    points_per_side: int | None = None
    points_per_batch: int = 64
    pred_iou_thresh: float = 0.86
    stability_score_thresh: float = 0.92
    stability_score_offset: float = 1.0
    box_nms_thresh: float = 0.7
    crop_n_layers: int = 0
    min_mask_region_area: int = 0
    nest_fraction: float = NEST_FRACTION

    @classmethod
    def with_overrides(cls, **overrides: Any) -> SamSettings:
        """Default settings with some replaced; an unknown name is the user's mistake, said in one line."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise InputError(
                f"unknown SAM region setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        return replace(cls(), **overrides)

    def resolved(self, device: torch.device) -> SamSettings:
        """Fill in the device-dependent default so that cache keys name what actually ran."""
        if self.points_per_side is not None:
            return self
        return replace(self, points_per_side=32 if device.type == "cuda" else 16)

    def generator_kwargs(self) -> dict[str, Any]:
        kwargs = asdict(self)
        kwargs.pop("nest_fraction")
        return kwargs


def resolve_sam_checkpoint(explicit: str | os.PathLike | None = None) -> Path:
    """The SAM checkpoint: `--sam-checkpoint`, else `RNS_SAM_CHECKPOINT`; a one-line error when neither."""
    if explicit:
        source, value = "--sam-checkpoint", str(explicit)
    elif os.environ.get(SAM_CHECKPOINT_ENV):
        source, value = SAM_CHECKPOINT_ENV, os.environ[SAM_CHECKPOINT_ENV]
    else:
        raise WeightsUnavailableError(
            f"SAM regions need a local checkpoint file: none given (no --sam-checkpoint, "
            f"{SAM_CHECKPOINT_ENV} unset) and rns does not download SAM weights; {_WAYS_OUT}"
        )
    path = Path(value).expanduser()
    if not path.is_file():
        raise WeightsUnavailableError(f"SAM checkpoint {path} (from {source}) is not a file; {_WAYS_OUT}")
    return path


def weights_identity(path: Path) -> str:
    """A cheap fingerprint of a checkpoint file: name, size and a hash of its first and last MiB.

    Hashing all of a 2.5 GB ViT-H file would cost seconds on every run; head, tail and size tell files
    apart in practice (a changed tensor changes the zip directory at the tail).
    """
    size = path.stat().st_size
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        digest.update(stream.read(1 << 20))
        if size > 2 << 20:
            stream.seek(-(1 << 20), os.SEEK_END)
            digest.update(stream.read(1 << 20))
    return f"{path.name}:{size}:{digest.hexdigest()[:16]}"


def load_sam(path: Path, model_type: str | None = None) -> torch.nn.Module:
    """Build a SAM model sized from the checkpoint and load its weights (on the CPU)."""
    from segment_anything import sam_model_registry

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many kinds for a file that is not a checkpoint
        raise InputError(
            f"SAM checkpoint {path} could not be read ({type(error).__name__}); is it a complete .pth "
            f"download? {_WAYS_OUT}"
        ) from error
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    patch_embed = state.get("image_encoder.patch_embed.proj.weight") if isinstance(state, dict) else None
    found = _EMBED_DIM_TO_TYPE.get(int(patch_embed.shape[0])) if patch_embed is not None else None
    if found is None:
        raise InputError(
            f"{path} is not an official SAM ViT-B/L/H checkpoint (no matching image encoder weights); "
            f"{_WAYS_OUT}"
        )
    if model_type is not None and model_type != found:
        raise InputError(
            f"SAM checkpoint {path} holds a {found} model, not {model_type}; drop the model type"
        )
    model = sam_model_registry[found](checkpoint=None)
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        detail = str(error).splitlines()[0][:200]
        raise InputError(f"SAM checkpoint {path} does not match the {found} model: {detail}") from error
    return model.eval()


def build_random_tiny_sam(seed: int = 0) -> torch.nn.Module:
    """A SAM with tiny dimensions and RANDOM weights, for tests only: it exercises the same automatic-mask
    code path in well under a second, and its masks mean nothing."""
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    torch.manual_seed(seed)
    image_size, patch, dim = 64, 16, 32
    model = Sam(
        image_encoder=ImageEncoderViT(
            img_size=image_size, patch_size=patch, embed_dim=dim, depth=1, num_heads=2, out_chans=dim,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=dim, image_embedding_size=(image_size // patch,) * 2,
            input_image_size=(image_size, image_size), mask_in_chans=4,
        ),
        mask_decoder=MaskDecoder(
            transformer_dim=dim,
            transformer=TwoWayTransformer(depth=1, embedding_dim=dim, num_heads=2, mlp_dim=64),
            iou_head_depth=1, iou_head_hidden_dim=16,
        ),
    )
    return model.eval()


MaskGenerator = Any  # anything with .generate(rgb uint8 [H, W, 3]) -> list of SAM mask records


class SamProposer:
    """SAM automatic masks -> int32 region map `[H, W]` (see `rns.regions.paint`)."""

    name = "sam"

    def __init__(
        self,
        checkpoint: str | os.PathLike | None = None,
        *,
        model_type: str | None = None,
        device: str = "auto",
        model: torch.nn.Module | None = None,
        generator_factory: Callable[[torch.nn.Module, SamSettings], MaskGenerator] | None = None,
        **settings: Any,
    ) -> None:
        """`model` replaces the checkpoint (tests pass `build_random_tiny_sam()`); `generator_factory`
        replaces SamAutomaticMaskGenerator (tests pass a stub with known masks)."""
        if model_type is not None and model_type not in SAM_MODEL_TYPES:
            raise InputError(f"SAM model type {model_type!r} is not one of {', '.join(SAM_MODEL_TYPES)}")
        self.device = resolve_device(device)
        self.settings = SamSettings.with_overrides(**settings).resolved(self.device)
        self._model_type = model_type
        self._model = model
        self._checkpoint = None if model is not None else resolve_sam_checkpoint(checkpoint)
        self._weights = "in-memory model" if self._checkpoint is None else weights_identity(self._checkpoint)
        self._generator_factory = generator_factory or _automatic_mask_generator
        self._generator: MaskGenerator | None = None

    def settings_key(self) -> str:
        fields_text = ",".join(f"{k}={v}" for k, v in sorted(asdict(self.settings).items()))
        return f"sam:{self._model_type or 'auto'}:{self._weights}:{fields_text}"

    def _ensure_generator(self) -> MaskGenerator:
        if self._generator is None:
            model = self._model if self._model is not None else load_sam(self._checkpoint, self._model_type)
            self._generator = self._generator_factory(model.to(self.device), self.settings)
        return self._generator

    def propose(self, image: Image.Image) -> np.ndarray:
        rgb = np.asarray(image.convert("RGB"))
        records = self._ensure_generator().generate(rgb)
        return paint_regions(records, rgb.shape[:2], nest_fraction=self.settings.nest_fraction)


def _automatic_mask_generator(model: torch.nn.Module, settings: SamSettings) -> MaskGenerator:
    from segment_anything import SamAutomaticMaskGenerator

    if settings.min_mask_region_area > 0:
        try:
            import cv2  # noqa: F401  (SAM's small-region cleanup needs OpenCV)
        except ImportError as error:
            raise InputError(
                "SAM setting min_mask_region_area > 0 needs OpenCV: pip install opencv-python-headless, "
                "or leave it at 0"
            ) from error
    return SamAutomaticMaskGenerator(model, output_mode="binary_mask", **settings.generator_kwargs())
