"""Whether a memory teaches "background" by examples: what decides, for a backbone with no text, if a
segmentation can have a background class at all (it is learned from examples alone there)."""

from __future__ import annotations

from rns.errors import InputError
from rns.segment.requested_classes import clean_class_list, parse_class_list
from rns.segmentation import BACKGROUND
from support_memory import SupportMemory


def background_taught(memory: SupportMemory | None, classes: list[str] | str | None) -> bool:
    """Whether the memory holds examples that would map to background: a stored "background" class, or a
    stored class the user did not ask for (asking for none means all of them)."""
    if memory is None or memory.n_prototypes == 0:
        return False
    stored = {info.name.casefold() for info in memory.classes()}
    if BACKGROUND in stored:
        return True
    if not classes:
        return False
    asked = parse_class_list(classes) if isinstance(classes, str) else clean_class_list(list(classes))
    return bool(stored - {name.casefold() for name in asked})


def lone_class_error(model: str, name: str) -> InputError:
    """One class and no background, on a backbone with no text: every pixel would be that class.

    With text, background comes from a threshold on the class's text similarity; without, it is learned
    from examples alone, and the zero pixels of a binary mask (`--class NAME`) are not examples of it (they
    are unlabelled: a mask drawn around one object says nothing about the rest). So the one-class case is
    refused, naming the ways to teach what is not `name`.
    """
    return InputError(
        f"only {name!r} would be segmented and {model} has no text encoder, so every pixel would be "
        f"{name!r}: teach background too (rns add-support IMAGE MASK --labels \"0=background,1={name}\": "
        "a binary mask's zero pixels become background examples), teach a second class, or use a CLIP "
        "model (--model ViT-B-16)"
    )
