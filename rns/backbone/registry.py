"""Building a backbone: which model, which weights, which device (`build_from_spec` picks the family from
`rns.backbone.families`; the open_clip family's builder is here).

`BackboneSpec` says *what* to build (and is what a pipeline records); `build_backbone` turns it into a
frozen model. Weights are located first (`weights.py`: cache lookups, file checks, no loading), so that an
offline machine without cached weights gets a one-line `WeightsUnavailableError` in milliseconds rather
than a long network retry, and a bad checkpoint gets a one-line `InputError` rather than a traceback.

Defaults come from the environment, then from the built-in defaults:
`RNS_MODEL` (ViT-B-16), `RNS_PRETRAINED` (laion2b_s34b_b88k), `RNS_CHECKPOINT` (none), `RNS_VARIANT`.
A checkpoint given as an argument wins over a pretrained tag; `RNS_CHECKPOINT` is only used when the
caller named neither, so that an explicit `--pretrained` is never silently overridden by the environment.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from rns.backbone.clip import ClipBackbone
from rns.backbone.dense import WindowConfig
from rns.backbone.families import family_of
from rns.backbone.spec import (
    BackboneSpec,
)
from rns.backbone.weights import RANDOM_SEED, WeightsSource, locate_weights, unavailable_message
from rns.devices import resolve_device
from rns.errors import InputError, WeightsUnavailableError

if TYPE_CHECKING:
    from rns.backbone.efficientnet import EfficientNetLiteBackbone

    Backbone = ClipBackbone | EfficientNetLiteBackbone

TINY_TEST_MODEL = "rns-tiny-test"  # model_configs/rns-tiny-test.json: a few-MB model for tests

MODEL_CONFIG_DIR = Path(__file__).parent / "model_configs"
_configs_registered = False


def register_model_configs() -> None:
    """Make rns's own open_clip configs (the tiny test model) known to open_clip, once per process."""
    global _configs_registered
    if not _configs_registered:
        import open_clip

        open_clip.add_model_config(MODEL_CONFIG_DIR)
        _configs_registered = True


def build_backbone(model: str | None = None, pretrained: str | None = None,
                   checkpoint: str | os.PathLike | None = None, variant: str | None = None,
                   device: str | None = "auto", window: WindowConfig | None = None, *,
                   text_cache_dir: Path | None = None) -> Backbone:
    """Build a frozen backbone (a `ClipBackbone`, or e.g. `efficientnet-lite0`'s image-only one).

    Arguments left as None come from RNS_* variables or the defaults.

    `pretrained="random"` builds seeded random weights (tests only, labelled so). Raises
    `WeightsUnavailableError` when a tag is neither cached nor downloadable, `InputError` for a bad
    checkpoint, model name or setting, `DeviceError` for a device this machine lacks.
    """
    spec = BackboneSpec.resolve(model, pretrained, checkpoint, variant, device, window)
    return build_from_spec(spec, text_cache_dir=text_cache_dir)


def build_from_spec(spec: BackboneSpec, *, text_cache_dir: Path | None = None) -> Backbone:
    """Build the backbone a `BackboneSpec` describes, by its family (see `rns.backbone.families`)."""
    return family_of(spec.model).build(spec, text_cache_dir=text_cache_dir)


def build_clip_from_spec(spec: BackboneSpec, *, text_cache_dir: Path | None = None) -> ClipBackbone:
    """The open_clip family's builder (see `build_backbone`)."""
    import open_clip

    register_model_configs()
    torch_device = resolve_device(spec.device)
    _check_model_name(spec.model)
    source = locate_weights(spec.model, spec.pretrained, spec.checkpoint)
    with _quiet_open_clip():
        network = _create_model(spec.model, source)
        tokenizer = open_clip.get_tokenizer(spec.model)
    network = network.to(torch_device).eval().requires_grad_(False)
    return ClipBackbone(network, tokenizer, spec, source.label, source.identity, torch_device,
                        text_cache_dir=text_cache_dir)


def _check_model_name(name: str) -> None:
    import open_clip

    if name not in open_clip.list_models():
        vits = [m for m in open_clip.list_models() if m.startswith("ViT-B")][:6]
        raise InputError(
            f"--model {name!r} is not an open_clip model config; use e.g. {', '.join(vits)} "
            "(see open_clip.list_models())"
        )


@contextlib.contextmanager
def _quiet_open_clip():
    """open_clip logs routine warnings (e.g. 'initialized randomly') on the root logger; rns says that
    itself through `weights_label`, so they are muted while building."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


def _create_model(name: str, source: WeightsSource) -> torch.nn.Module:
    import open_clip

    if source.kind == "random":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_SEED)
            return open_clip.create_model(name, pretrained=None)
    if source.kind == "file":
        return _load_checkpoint_file(name, source.local_file)
    tag_cfg = source.tag_config or {}
    preprocess_keys = ("mean", "std", "interpolation", "resize_mode")
    preprocess = {key: tag_cfg[key] for key in preprocess_keys if key in tag_cfg}
    # A cached file is loaded by path so that open_clip never touches the network; the tag's own settings
    # (QuickGELU, normalisation) are passed explicitly because a path carries none of them.
    weights = str(source.local_file) if source.local_file is not None else source.label
    try:
        return open_clip.create_model(
            name,
            pretrained=weights,
            force_quick_gelu=bool(tag_cfg.get("quick_gelu", False)),
            force_preprocess_cfg=preprocess or None,
        )
    except RuntimeError as error:
        if source.local_file is not None or "download" not in str(error).lower():
            raise
        raise WeightsUnavailableError(
            unavailable_message(name, source.label, "the download from the model hub failed")
        ) from None


def _load_checkpoint_file(name: str, path: Path) -> torch.nn.Module:
    """Random model of the named architecture, then the user's file loaded strictly into it.

    The file is first opened on its own (memory-mapped where the format allows, so this costs little) to
    tell "not a checkpoint at all" from "a checkpoint of another architecture": the fixes differ.
    """
    import open_clip
    from open_clip.factory import load_checkpoint

    _probe_checkpoint(path)
    model = open_clip.create_model(name, pretrained=None)
    try:
        load_checkpoint(model, str(path), strict=True, weights_only=True)
    except Exception as error:  # key or shape mismatches surface as RuntimeError, KeyError, ValueError
        raise InputError(
            f"checkpoint {path} does not fit model {name} ({_mismatch_summary(error)}); pass --model with "
            "the architecture it was saved from (e.g. ViT-B-16-quickgelu for OpenAI's ViT-B/16)"
        ) from None
    return model


def _probe_checkpoint(path: Path) -> None:
    """Raise a one-line InputError unless `path` holds a state dict of tensors."""
    try:
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as handle:
                if not list(handle.keys()):
                    raise ValueError("no tensors in file")
            return
        try:
            loaded = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as error:
            if "mmap" not in str(error):
                raise
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # unpickling, zip format, safetensors header, ...: any unreadable file
        reason = (str(error).splitlines() or [""])[0].strip()[:100]
        raise InputError(
            f"checkpoint {path} is not a readable PyTorch/safetensors checkpoint ({type(error).__name__}: "
            f"{reason}); pass a .pt/.pth/.bin/.safetensors file saved from an open_clip model"
        ) from None
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict) or not any(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise InputError(
            f"checkpoint {path} holds no model weights (a {type(loaded).__name__}, not a state dict of "
            "tensors); pass a file saved with torch.save(model.state_dict(), ...) from an open_clip model"
        )


def _mismatch_summary(error: Exception) -> str:
    text = str(error)
    found = [label for key, label in (("Missing key", "missing keys"), ("Unexpected key", "unexpected keys"),
                                      ("size mismatch", "tensor shapes differ")) if key in text]
    return ", ".join(found) if found else f"{type(error).__name__}: {(text.splitlines() or [''])[0][:80]}"
