"""`BackboneSpec`: what backbone to build (model, weights, feature variant, device, window), resolved
from arguments, then the RNS_* environment variables, then the defaults.

Apart from the builder (`registry.py`) and the built model (`clip.py`), so that both can name it without
importing each other.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field

from rns.backbone.dense import DEFAULT_VARIANT, WindowConfig, check_variant
from rns.backbone.families import DEFAULT_MODEL, MODEL_ENV, family_of, resolve_model_name  # noqa: F401 (re-exported)
from rns.errors import InputError

DEFAULT_PRETRAINED = "laion2b_s34b_b88k"

PRETRAINED_ENV = "RNS_PRETRAINED"
CHECKPOINT_ENV = "RNS_CHECKPOINT"
VARIANT_ENV = "RNS_VARIANT"


@dataclass(frozen=True)
class BackboneSpec:
    """What to build: model name, weights (tag or file), feature variant, device, sliding window."""

    model: str = DEFAULT_MODEL
    pretrained: str = DEFAULT_PRETRAINED
    checkpoint: str | None = None
    variant: str = DEFAULT_VARIANT
    device: str = "auto"
    window: WindowConfig = field(default_factory=WindowConfig)

    @classmethod
    def resolve(cls, model: str | None = None, pretrained: str | None = None,
                checkpoint: str | os.PathLike | None = None, variant: str | None = None,
                device: str | None = "auto", window: WindowConfig | None = None) -> BackboneSpec:
        """Fill what the caller left out from the environment, then from the defaults.

        The environment holds one setting for every command, usually a CLIP user's: $RNS_PRETRAINED with a
        tag another family does not know, and $RNS_VARIANT, are left out for that family (its own default
        applies), while the same thing passed as an argument is refused in one line (the user asked for it
        on this command, so silently dropping it would mislead).
        """
        if checkpoint is None and pretrained is None:
            checkpoint = os.environ.get(CHECKPOINT_ENV) or None
        model = resolve_model_name(model)
        family = family_of(model)
        env_tag = os.environ.get(PRETRAINED_ENV) or None
        if env_tag and not family.knows_tag(env_tag):
            env_tag = None  # e.g. a CLIP tag while --model efficientnet-lite0
        env_variant = os.environ.get(VARIANT_ENV) or None
        if not family.has_variants:
            if variant is not None:
                raise InputError(f"--variant {variant} applies to CLIP models only; {model} has one kind of "
                                 "dense features: leave out --variant (or use a CLIP model, e.g. --model "
                                 "ViT-B-16)")
            env_variant = None
        return cls(
            model=model,
            # Each family has its own default weights (a CLIP tag means nothing to EfficientNet-Lite).
            pretrained=pretrained or env_tag or family.default_pretrained,
            checkpoint=str(checkpoint) if checkpoint else None,
            variant=check_variant(variant or env_variant or DEFAULT_VARIANT),
            device=device or "auto",
            window=window or WindowConfig(),
        )

    def to_dict(self) -> dict:
        """JSON-able record of the spec (for run summaries)."""
        return asdict(self)
