"""`--batch-size N|auto`: how many images a folder run gives the backbone in one call.

A performance knob only: the crops of several images share forward passes and each image's features are
stitched back as if it ran alone, so its outputs do not depend on the value (bit for bit on a CPU; a GPU
may pick other kernels for other batch shapes and round the last bits differently). Like
`WindowConfig.batch_size` (crops per forward), the value is therefore not part of a run's settings key,
and changing it never redoes finished images.

Kept free of torch so that the command line can check the value before it builds the model.
"""

from __future__ import annotations

from typing import Literal

from rns.errors import InputError

AUTO = "auto"
BatchSize = int | Literal["auto"]


def parse_batch_size(value: str | int | None) -> BatchSize:
    """A positive number of images, or "auto"; anything else is a one-line `InputError`."""
    if value is None:
        return AUTO
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        text = str(value).strip().lower()
        if text == AUTO:
            return AUTO
        try:
            number = int(text)
        except ValueError:
            number = None
        if number is None:
            raise InputError(f"--batch-size {value!r} is not a number of images; give a whole number >= 1 "
                             "or auto")
    if number < 1:
        raise InputError(f"--batch-size {number}: give at least 1 image per batch, or auto")
    return number


def resolve_batch_size(value: str | int | None, segmenter: object) -> int:
    """The number of images per backbone call for this segmenter: a given number, or its backbone's choice.

    "auto" asks the backbone (`ClipBackbone.auto_batch_size`: 1 on a CPU, from the free memory on a GPU);
    a segmenter without such a backbone (a test double, a custom segmenter) gets 1.
    """
    parsed = parse_batch_size(value)
    if parsed != AUTO:
        return int(parsed)
    choose = getattr(getattr(segmenter, "backbone", None), "auto_batch_size", None)
    return max(1, int(choose())) if callable(choose) else 1


__all__ = ["AUTO", "BatchSize", "parse_batch_size", "resolve_batch_size"]
