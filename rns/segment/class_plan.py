"""The classes of one request as the segmenter numbers them: label ids, text prompts, memory classes mapped.

`plan_classes` decides, once per request, which label id each output class gets (0 = background when it
is on) and which words describe it; `memory_class_index` maps the support memory's own class ids onto those
label ids. Both are about names only (no features), so the audit can reuse the segmenter's mapping.
"""

from __future__ import annotations

from dataclasses import dataclass

from rns.segment.requested_classes import background_words
from rns.segmentation import BACKGROUND
from support_memory import SupportMemory

__all__ = ["ClassPlan", "memory_class_index", "plan_classes"]


@dataclass(frozen=True)
class ClassPlan:
    """The output classes (index = label id) and, per class, the text prompt to encode (None: no name)."""

    names: tuple[str, ...]
    prompts: tuple[tuple[str, ...] | None, ...]


def plan_classes(asked: list[str], memory: SupportMemory | None, *, background: bool) -> ClassPlan:
    """Decide the label ids and the text of every class.

    A class the memory knows takes its stored prompt (or no text for a `--no-text` class); any other class
    is described by its own name. Background, when on, is class 0 with the generic background words.
    """
    # Names compare case-insensitively; a class the memory knows is shown as the memory spells it.
    stored = {info.name.casefold(): info for info in memory.classes()} if memory is not None else {}
    names: list[str] = [BACKGROUND] if background else []
    prompts: list[tuple[str, ...] | None] = [tuple(background_words(asked))] if background else []
    for name in asked:
        info = stored.get(name.casefold())
        names.append(name if info is None else info.name)
        if info is None:
            prompts.append((name,))
        else:
            prompts.append((info.text,) if info.has_text and info.text else None)
    return ClassPlan(tuple(names), tuple(prompts))


def memory_class_index(memory: SupportMemory, plan: ClassPlan, *, background: bool) -> dict[int, int | None]:
    """Map memory class ids to output label ids.

    Classes that were asked for map to themselves; a stored "background" class maps to background; any
    other stored class is evidence of "none of the asked classes", so it maps to background when there is
    one and is dropped otherwise.
    """
    index: dict[int, int | None] = {}
    folded = [name.casefold() for name in plan.names]
    for info in memory.classes():
        if info.name.casefold() in folded:
            index[info.id] = folded.index(info.name.casefold())
        else:
            index[info.id] = 0 if background else None
    return index
