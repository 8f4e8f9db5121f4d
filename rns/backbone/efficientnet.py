"""`EfficientNetLiteBackbone`: an image-only backbone (ImageNet EfficientNet-Lite) behind the interface
the pipeline, add-support, the ui and Ray workers use.

Architecture: timm's `tf_efficientnet_lite0/1/2` (built with `pretrained=False`: timm's own download is
never used), TensorFlow "same" padding as the weights were trained with. timm rather than code of our own:
it is already installed (an open_clip dependency), well kept, and its definition is the one the weights'
key names map onto one to one (`efficientnet_weights.py`). Inputs are scaled `(x - 127) / 128` per
channel, the EfficientNet-Lite convention (checked by ImageNet classification in the tests: ImageNet
mean/std instead turns a street photo into "chainlink fence").

Dense features: the image is resized like CLIP's (OpenCV bilinear, short side `short_side`), zero-padded
to whole `grid_stride` cells, and run once (a convolutional net needs no sliding window). The last map of
each of the stride 8, 16 and 32 stages is resized to the stride-`grid_stride` grid (area-averaged when
finer, bilinear when coarser), L2-normalised per position, concatenated and normalised again: every
scale weighs the same, fine ones for boundaries, coarse ones for context. No text tower: `has_text` is
False and `encode_text` refuses.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from rns.backbone.efficientnet_weights import LITE_MODELS, lite_model, load_strict, locate_lite_weights
from rns.backbone.families import no_text_error
from rns.backbone.geometry import ImageGeometry, image_geometry, resize_pixels
from rns.backbone.spec import BackboneSpec
from rns.backbone.weights import RANDOM_SEED
from rns.devices import resolve_device

FEATURE_FORMAT = 1  # bump when a code change alters feature values for the same weights and settings
TAP_STAGES = (2, 4, 6)  # the last stage at stride 8, 16 and 32 in every EfficientNet-Lite
PIXEL_CENTRE, PIXEL_SCALE = 127.0, 128.0


@dataclass(frozen=True)
class LiteInput:
    """How an image enters the network: resize (short side, long side cap) and the output grid's stride.

    Defaults chosen on CamVid's val split (docs/RESULTS.md): short side 448 px, a stride-16 grid.
    """

    short_side: int = 448
    long_side: int = 2048
    grid_stride: int = 16

    def fingerprint(self) -> dict:
        return {"short_side": self.short_side, "long_side": self.long_side, "grid_stride": self.grid_stride}


class EfficientNetLiteBackbone:
    """A frozen EfficientNet-Lite giving L2-normalised multi-scale dense features; no text."""

    has_text = False

    def __init__(self, network: torch.nn.Module, spec: BackboneSpec, weights_label: str,
                 weights_identity: dict, device: torch.device, settings: LiteInput | None = None) -> None:
        self._network = network
        self.spec = spec
        self.weights_label = weights_label
        self.device = device
        self.settings = settings or LiteInput()
        self.patch_size = self.settings.grid_stride
        self.dim = int(sum(_stage_channels(network, stage) for stage in TAP_STAGES))
        self.fingerprint = {
            "format": FEATURE_FORMAT,
            "family": "efficientnet-lite",
            "model": spec.model,
            "weights": dict(weights_identity),
            "scales": [8, 16, 32],
            **self.settings.fingerprint(),
            "dim": self.dim,
        }

    def __repr__(self) -> str:
        return f"EfficientNetLiteBackbone(model={self.spec.model!r}, weights={self.weights_label!r}, " \
               f"device={self.device})"

    @property
    def variant(self) -> str:
        """What the features are (CLIP's last-block variants do not apply here)."""
        return "multiscale"

    @property
    def model(self) -> torch.nn.Module:
        """The underlying timm network (frozen, eval mode), classifier included."""
        return self._network

    def geometry(self, width: int, height: int) -> ImageGeometry:
        """Original, resized and padded sizes of a `width x height` image, and its feature grid."""
        return image_geometry(width, height, self.settings.short_side, self.settings.long_side,
                              self.settings.grid_stride)

    def grid_size(self, width: int, height: int) -> tuple[int, int]:
        return self.geometry(width, height).grid

    def image_tensor(self, image: Image.Image) -> torch.Tensor:
        """`[3, H, W]` network input: resized, zero-padded (black) to whole grid cells, scaled (x-127)/128."""
        geometry = self.geometry(image.width, image.height)
        resized = resize_pixels(np.asarray(image.convert("RGB"), dtype=np.uint8), geometry.resized)
        height, width = geometry.padded
        pixels = F.pad(resized, (0, width - resized.shape[2], 0, height - resized.shape[1]), value=0.0)
        return (pixels * 255.0 - PIXEL_CENTRE) / PIXEL_SCALE

    @torch.inference_mode()
    def dense_features(self, image: Image.Image) -> torch.Tensor:
        """`[gh, gw, dim]` L2-normalised features of the padded grid (see the module docstring)."""
        pixels = self.image_tensor(image).to(self.device)
        return self.features_of_pixels(pixels[None])[0]

    def dense_features_many(self, images: list[Image.Image]) -> list[torch.Tensor]:
        """`dense_features` of each image (one forward each: the images may differ in size)."""
        return [self.dense_features(image) for image in images]

    def auto_batch_size(self) -> int:
        return 1

    def support_features(self, image: Image.Image) -> torch.Tensor:
        """Support images use the very features of test images (one pass; nothing to average)."""
        return self.dense_features(image)

    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        raise no_text_error(self.spec.model, prompts[0] if prompts else "?", "needs its name read")

    @torch.inference_mode()
    def features_of_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """`[b, gh, gw, dim]` features of a batch of scaled, padded inputs `[b, 3, gh*s, gw*s]`."""
        net = self._network
        grid = (pixels.shape[2] // self.settings.grid_stride, pixels.shape[3] // self.settings.grid_stride)
        x = net.bn1(net.conv_stem(pixels))
        maps = []
        for index, stage in enumerate(net.blocks):
            x = stage(x)
            if index in TAP_STAGES:
                maps.append(F.normalize(_to_grid(x.float(), grid), dim=1))
        return F.normalize(torch.cat(maps, dim=1), dim=1).permute(0, 2, 3, 1).contiguous()

    @torch.inference_mode()
    def classify(self, image: Image.Image, size: int = 224) -> torch.Tensor:
        """`[1000]` ImageNet probabilities of the whole image resized to `size` (short side): a check that
        the weights and the scaling are right, not part of segmentation."""
        scale = size / min(image.width, image.height)
        resized = image.convert("RGB").resize((round(image.width * scale), round(image.height * scale)),
                                              Image.BILINEAR)
        pixels = torch.from_numpy(np.asarray(resized, dtype=np.float32)).permute(2, 0, 1)
        logits = self._network(((pixels - PIXEL_CENTRE) / PIXEL_SCALE)[None].to(self.device))
        return logits.softmax(dim=-1)[0].float().cpu()


def _to_grid(feature_map: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """A `[b, c, h, w]` map on the `grid`: area-averaged when finer, bilinear when coarser."""
    if tuple(feature_map.shape[2:]) == grid:
        return feature_map
    if feature_map.shape[2] >= grid[0] and feature_map.shape[3] >= grid[1]:
        return F.adaptive_avg_pool2d(feature_map, grid)
    return F.interpolate(feature_map, size=grid, mode="bilinear", align_corners=False)


def _stage_channels(network: torch.nn.Module, stage: int) -> int:
    last = network.blocks[stage][-1]
    conv = getattr(last, "conv_pwl", None) or last.conv_pw
    return int(conv.out_channels)


def build_efficientnet_lite(spec: BackboneSpec, *, text_cache_dir: Path | None = None,
                            settings: LiteInput | None = None) -> EfficientNetLiteBackbone:
    """Build the frozen backbone a spec names; weights from the pip package or `spec.checkpoint`.

    `text_cache_dir` is accepted for the family interface and unused (no text). Raises `InputError` for
    a bad checkpoint, `WeightsUnavailableError` when the weights package is not installed.
    """
    import timm

    del text_cache_dir
    model = lite_model(spec.model)
    source = locate_lite_weights(spec.model, spec.pretrained, spec.checkpoint)
    device = resolve_device(spec.device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_SEED)
        network = timm.create_model(model.timm_name, pretrained=False)
    if source.local_file is not None:
        load_strict(network, source.local_file, spec.model)
    network = network.to(device).eval().requires_grad_(False)
    return EfficientNetLiteBackbone(network, spec, source.label, source.identity, device, settings)


__all__ = ["LITE_MODELS", "EfficientNetLiteBackbone", "LiteInput", "build_efficientnet_lite"]
