"""The table of backbone families: which model names each one builds, its default weights, whether it
has a text tower, and where its builder lives.

Like open_clip's table of pretrained weights, adding a family (e.g. DINOv3.txt) is one more entry: a
builder returning an object with the backbone interface (`dense_features`, `dense_features_many`,
`support_features`, `geometry`, `fingerprint`, `has_text`, `encode_text` where `has_text`), and a weights
check for `rns info`. This module imports nothing heavy: the CLI asks it whether a model has text (to
refuse `--text` before loading anything) and `rns info` lists the families from it.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass

from rns.backbone.efficientnet_weights import IMAGENET_TAG, LITE_MODELS
from rns.backbone.weights import RANDOM_WEIGHTS
from rns.errors import InputError

CLIP_EXAMPLE = "ViT-B-16"
DEFAULT_MODEL = "ViT-B-16"
MODEL_ENV = "RNS_MODEL"


@dataclass(frozen=True)
class BackboneFamily:
    """One family of backbones: the models it owns, its default weights, and how to build/check them.

    `models` lists the family's names; an empty tuple means "every name no other family owns" (open_clip,
    whose list of models is long and changes with its version). `builder` and `weights_check` are
    "module:function" paths, imported only when used, so that the table itself stays light.
    """

    name: str
    models: tuple[str, ...]
    default_pretrained: str
    has_text: bool
    builder: str
    weights_check: str
    summary: str
    # The weight tags the family knows (empty: any, open_clip's list is long); $RNS_PRETRAINED set to a
    # tag outside it is another family's setting and is left to that family.
    tags: tuple[str, ...] = ()
    # Whether `--variant` (CLIP's last-block dense-feature variants) means anything to this family.
    has_variants: bool = True

    def owns(self, model: str) -> bool:
        return not self.models or model in self.models

    def knows_tag(self, tag: str) -> bool:
        return not self.tags or tag in self.tags

    def build(self, spec, *, text_cache_dir=None):  # type: ignore[no-untyped-def]
        """Build the backbone `spec` describes (see the family's builder for the errors it raises)."""
        return _function(self.builder)(spec, text_cache_dir=text_cache_dir)

    def check_weights(self, model: str, pretrained: str, checkpoint: str | os.PathLike | None):  # type: ignore[no-untyped-def]
        """A `WeightsCheck`: usable offline now or not, without loading anything."""
        return _function(self.weights_check)(model, pretrained, checkpoint)


def _function(path: str) -> Callable:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


FAMILIES: tuple[BackboneFamily, ...] = (
    BackboneFamily(
        name="efficientnet-lite",
        models=tuple(LITE_MODELS),
        default_pretrained=IMAGENET_TAG,
        has_text=False,
        builder="rns.backbone.efficientnet:build_efficientnet_lite",
        weights_check="rns.backbone.efficientnet_weights:check_lite_weights",
        summary="image only (no text): ImageNet weights installed with rns, offline; every class needs "
                "examples",
        tags=(IMAGENET_TAG, RANDOM_WEIGHTS),
        has_variants=False,
    ),
    BackboneFamily(  # last: it owns every name the families above do not
        name="open_clip",
        models=(),
        default_pretrained="laion2b_s34b_b88k",
        has_text=True,
        builder="rns.backbone.registry:build_clip_from_spec",
        weights_check="rns.backbone.weights:check_weights",
        summary="image + text (zero-shot and class names); weights downloaded once from the model hub",
    ),
)


def family_of(model: str) -> BackboneFamily:
    """The family that builds `model` (open_clip for any name no other family claims)."""
    return next(family for family in FAMILIES if family.owns(model))


def resolve_model_name(model: str | None) -> str:
    """The model a command will build: the argument, else $RNS_MODEL, else the default."""
    return model or os.environ.get(MODEL_ENV) or DEFAULT_MODEL


def model_has_text(model: str | None) -> bool:
    """Whether the model a command will build (resolved as `resolve_model_name`) reads class names."""
    return family_of(resolve_model_name(model)).has_text


class NoTextError(InputError):
    """A class name was needed (zero-shot, a class without examples, --text) by a backbone with no text."""


def no_text_error(model: str, class_name: str, what: str = "has no examples") -> NoTextError:
    """The one line for every path that needs a class name the backbone cannot read."""
    return NoTextError(
        f"class {class_name!r} {what} and {model} has no text encoder: add examples of it "
        f"(rns add-support IMAGE MASK --class {class_name!r}), or use a CLIP model (--model {CLIP_EXAMPLE})"
    )
