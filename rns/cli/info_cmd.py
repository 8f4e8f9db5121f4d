"""`rns info`: what rns would use right now (model, weights, device, memory, features), without loading it.

It answers "why does rns not work here?" before a user runs anything heavy: in particular whether the
weights are usable offline, and if not, the two ways to fix that. It never loads the model and never
touches the network, so it is instant and works on an offline machine.
"""

from __future__ import annotations

import click

from rns.choices import VARIANTS
from rns.cli.group import backbone_options, cli, memory_option
from rns.errors import DeviceError
from rns.paths import default_memory_path


def _model_line(name: str) -> str:
    from rns.backbone.families import family_of

    family = family_of(name)
    if family.models:
        return f"{name} ({family.name}: {family.summary})"
    import open_clip

    from rns.backbone.registry import register_model_configs

    register_model_configs()
    if name in open_clip.list_models():
        return name
    return f"{name} (unknown to open_clip: see open_clip.list_models())"


def _device_line(requested: str) -> str:
    from rns.devices import resolve_device

    try:
        device = resolve_device(requested)
    except DeviceError as error:
        return f"{requested}: not available ({error})"
    if requested == "auto":
        reason = "a CUDA GPU is visible" if device.type == "cuda" else "no CUDA GPU visible"
        return f"{device} (auto: {reason})"
    return str(device)


@cli.command("info")
@backbone_options
@memory_option
def info(model: str | None, pretrained: str | None, checkpoint: str | None, variant: str | None, device: str,
         memory_path: str | None) -> None:
    """Show the model, weights, device, memory and feature settings rns would use, and what is missing.

    Nothing is loaded or downloaded: this is safe to run anywhere, offline included.

    \b
    Example:
      rns info
      rns info --checkpoint ~/models/ViT-B-16-laion2b.bin
    """
    from rns.backbone import BackboneSpec
    from rns.backbone.families import family_of

    spec = BackboneSpec.resolve(model, pretrained, checkpoint, variant, device)
    family = family_of(spec.model)
    weights = family.check_weights(spec.model, spec.pretrained, spec.checkpoint)
    memory = default_memory_path(memory_path)
    window = spec.window
    rows = [
        ("model", _model_line(spec.model)),
        ("weights", weights.label),
        ("offline use", f"{'yes' if weights.available_offline else 'no'}: {weights.detail}"),
        ("device", _device_line(spec.device)),
        ("memory", f"{memory} ({_memory_state(memory)})"),
    ]
    if family.has_text:
        rows += [
            ("features", f"{spec.variant} (choices: {', '.join(VARIANTS)}; set RNS_VARIANT to change)"),
            ("window", f"short side {window.short_side} px, crop {window.crop} px, "
                       f"stride {window.stride} px"),
        ]
    else:
        from rns.backbone.efficientnet import LiteInput

        lite = LiteInput()
        rows += [
            ("features", f"multi-scale (stride 8, 16, 32), short side {lite.short_side} px, grid stride "
                         f"{lite.grid_stride} px"),
            ("text", "none: every class needs examples (no zero-shot, no --text); use a CLIP model for "
                     "those"),
        ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        click.echo(f"{name + ':':<{width + 1}} {value}")


def _memory_state(location) -> str:  # type: ignore[no-untyped-def]
    """'exists' / 'not created yet' for a folder; URLs are not contacted (no network for `rns info`)."""
    if isinstance(location, str):
        return "object store: not contacted"
    return "exists" if location.exists() else "not created yet"
