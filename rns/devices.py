"""Choosing the compute device: a GPU when there is one, the CPU otherwise."""

from __future__ import annotations

import torch

from rns.choices import DEVICE_CHOICES
from rns.errors import DeviceError


def resolve_device(name: str = "auto") -> torch.device:
    """Turn a user's `--device` value into a torch device, refusing ones this machine lacks.

    `auto` picks CUDA when available so that a user with a GPU never has to ask for it.
    """
    choice = (name or "auto").strip().lower()
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cpu":
        return torch.device("cpu")
    if choice.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(
                f"--device {name}: no CUDA GPU is visible to PyTorch here; use --device cpu (or auto)"
            )
        return torch.device(choice)
    raise DeviceError(f"--device {name!r} is not a device; choose one of: {', '.join(DEVICE_CHOICES)}")
