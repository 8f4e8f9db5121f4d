"""`ClipBackbone`: a built, frozen CLIP model seen through the two calls the rest of rns needs.

Building (choosing weights, loading, device placement) happens in `registry.py`; this class only *uses* a
model, the way open_clip separates `create_model` from the model's own methods and segment-anything
separates its registry from `Sam`. Everything the rest of rns needs from a backbone is here: dense patch
features of an image, text features of prompts, and a fingerprint that says which features these are.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from PIL import Image

from rns.backbone.dense import DenseFeatureExtractor
from rns.backbone.geometry import ImageGeometry
from rns.backbone.text import TextFeatureCache, encode_tokens_trimmed

if TYPE_CHECKING:
    from rns.backbone.spec import BackboneSpec

FEATURE_FORMAT = 2  # bump when a code change alters feature values for the same weights and settings
# 1: rns 0.1.0 (PIL bicubic resize onto a patch-multiple size, one window pass for supports, area pooling)
# 2: the reference's extraction (OpenCV-style resize, zero padding, two support passes, count pooling)


class ClipBackbone:
    """A frozen open_clip model producing L2-normalised dense image features and text features.

    Both kinds of feature live in the model's joint embedding space (dimension `dim`), so a patch and a
    class name are compared by inner product.
    """

    has_text = True  # the backbone-family capability: class names can be read (zero-shot, --text)

    def __init__(self, model: torch.nn.Module, tokenizer, spec: BackboneSpec, weights_label: str,
                 weights_identity: dict, device: torch.device, text_cache_dir: Path | None = None) -> None:
        from open_clip.model import get_model_preprocess_cfg

        self._model = model
        self._tokenizer = tokenizer
        self.spec = spec
        self.weights_label = weights_label
        self.device = device
        preprocess = get_model_preprocess_cfg(model)
        self._dense = DenseFeatureExtractor(
            model.visual, spec.variant, spec.window, tuple(preprocess["mean"]), tuple(preprocess["std"])
        )
        self.dim = int(model.visual.output_dim)
        self.patch_size = self._dense.patch
        self.fingerprint = {
            "format": FEATURE_FORMAT,
            "model": spec.model,
            "weights": dict(weights_identity),
            "variant": spec.variant,
            **spec.window.fingerprint(),
            "dim": self.dim,
        }
        self._text = TextFeatureCache(self._encode_sentences, self.dim, device, self.fingerprint,
                                      disk_dir=text_cache_dir)

    def __repr__(self) -> str:
        return (f"ClipBackbone(model={self.spec.model!r}, weights={self.weights_label!r}, "
                f"variant={self.spec.variant!r}, device={self.device})")

    @property
    def variant(self) -> str:
        return self.spec.variant

    @property
    def model(self) -> torch.nn.Module:
        """The underlying open_clip model (frozen, eval mode), for callers needing more than features."""
        return self._model

    def geometry(self, width: int, height: int) -> ImageGeometry:
        """Original, resized and padded sizes of a `width x height` image, and its patch grid."""
        return self._dense.geometry(width, height)

    def grid_size(self, width: int, height: int) -> tuple[int, int]:
        """The `(gh, gw)` feature grid `dense_features` returns for a `width x height` image."""
        return self.geometry(width, height).grid

    def dense_features(self, image: Image.Image) -> torch.Tensor:
        """`[gh, gw, dim]` L2-normalised test-time patch features of the resized, padded image.

        Patch (i, j) covers pixels `16i .. 16i+16` x `16j .. 16j+16` of the resized image; patches past
        its bottom/right edge cover padding (see `geometry`).
        """
        return self._dense(image)

    def dense_features_many(self, images: list[Image.Image]) -> list[torch.Tensor]:
        """`dense_features` of several images, their crops sharing forward passes (faster on a GPU).

        Element i equals `dense_features(images[i])`; the images may differ in size and aspect ratio.
        """
        return self._dense.features_many(list(images))

    def auto_batch_size(self) -> int:
        """How many images to give `dense_features_many` at once here: 1 on a CPU, more on a GPU.

        See `rns.backbone.batching`: a CPU is already busy with one image's crops, a GPU is not.
        """
        from rns.backbone.batching import auto_images_per_forward

        return auto_images_per_forward(self._dense)

    def support_features(self, image: Image.Image) -> torch.Tensor:
        """`[gh, gw, dim]` features of a support image (two window passes averaged), same grid as above."""
        return self._dense.support_features(image)

    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        """`[n, dim]` normalised text features, averaged over the 80 ImageNet templates; cached per prompt."""
        return self._text.encode(prompts)

    @torch.inference_mode()
    def _encode_sentences(self, sentences: list[str]) -> torch.Tensor:
        tokens = self._tokenizer(sentences).to(self.device)
        return encode_tokens_trimmed(self._model, tokens)
