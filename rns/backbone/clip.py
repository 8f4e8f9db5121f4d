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

from rns.backbone.dense import DenseFeatureExtractor, resized_grid
from rns.backbone.text import TextFeatureCache, encode_tokens_trimmed

if TYPE_CHECKING:
    from rns.backbone.registry import BackboneSpec

FEATURE_FORMAT = 1  # bump when a code change alters feature values for the same weights and settings


class ClipBackbone:
    """A frozen open_clip model producing L2-normalised dense image features and text features.

    Both kinds of feature live in the model's joint embedding space (dimension `dim`), so a patch and a
    class name are compared by inner product.
    """

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

    def grid_size(self, width: int, height: int) -> tuple[int, int]:
        """The `(gh, gw)` feature grid `dense_features` returns for a `width x height` image."""
        return resized_grid(width, height, self.spec.window.short_side, self.patch_size)

    def dense_features(self, image: Image.Image) -> torch.Tensor:
        """`[gh, gw, dim]` L2-normalised patch features covering the whole image, on `self.device`.

        Patch (i, j) covers rows `i*H/gh ... (i+1)*H/gh` and columns `j*W/gw ... (j+1)*W/gw` of the
        `H x W` input; the grid is that of the image resized to the configured short side.
        """
        return self._dense(image)

    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        """`[n, dim]` normalised text features, averaged over the 80 ImageNet templates; cached per prompt."""
        return self._text.encode(prompts)

    @torch.inference_mode()
    def _encode_sentences(self, sentences: list[str]) -> torch.Tensor:
        tokens = self._tokenizer(sentences).to(self.device)
        return encode_tokens_trimmed(self._model, tokens)
