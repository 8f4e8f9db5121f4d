"""Frozen backbones: a table of families (open_clip's CLIP models: dense patch features and text
features in one space; EfficientNet-Lite: image features only), built through one `build_backbone`.

Build with `build_backbone(...)` (or `build_from_spec(BackboneSpec(...))`); use the returned
`ClipBackbone`'s `dense_features(image)` and `encode_text(prompts)`. See docs/ARCHITECTURE.md,
"Backbone contract".
"""

from __future__ import annotations

from rns.backbone.clip import ClipBackbone
from rns.backbone.dense import DEFAULT_VARIANT, VARIANTS, WindowConfig
from rns.backbone.families import FAMILIES, BackboneFamily, NoTextError, family_of, model_has_text
from rns.backbone.registry import TINY_TEST_MODEL, build_backbone, build_from_spec
from rns.backbone.spec import DEFAULT_MODEL, DEFAULT_PRETRAINED, BackboneSpec
from rns.backbone.text import IMAGENET_TEMPLATES
from rns.backbone.weights import RANDOM_LABEL, RANDOM_WEIGHTS, WeightsCheck, check_weights

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_PRETRAINED",
    "DEFAULT_VARIANT",
    "IMAGENET_TEMPLATES",
    "RANDOM_LABEL",
    "RANDOM_WEIGHTS",
    "TINY_TEST_MODEL",
    "VARIANTS",
    "FAMILIES",
    "BackboneFamily",
    "BackboneSpec",
    "NoTextError",
    "family_of",
    "model_has_text",
    "ClipBackbone",
    "WeightsCheck",
    "WindowConfig",
    "build_backbone",
    "build_from_spec",
    "check_weights",
]
