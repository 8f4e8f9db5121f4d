"""Whether a memory teaches "background" by examples: what decides, for a backbone with no text, if a
segmentation can have a background class at all (it is learned from examples alone there)."""

from __future__ import annotations

from rns.requested_classes import clean_class_list, parse_class_list
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
