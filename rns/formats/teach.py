"""Teaching the support memory from another tool's export (what `rns add-support --coco ...` runs).

The import's items are staged as plain (image, mask) files (`rns.formats.staging`) and go through the
same checks and the same batched, atomic adding as any other support images (`rns.teach.support`). What
differs is how problems are handled: an export has many items made by other people, so an item that
cannot be used (missing image, unknown category, polygon outside the image, undecodable file, the same
photo twice) is reported and left out while the rest is added; the report's exit code is then 1.

Memory semantics are those of `rns add-support`: every item is read and checked before the model is
even loaded, then the usable ones are added in batches of `batch_size` images, each batch one atomic
commit of the memory. A run killed midway keeps the batches it committed, never part of one, and a
rerun finds those unchanged and adds the rest.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

from rns.errors import InputError
from rns.formats.items import ImportedSet, ItemProblem
from rns.formats.staging import staged_items
from rns.teach.mask_conventions import LabelMapping
from rns.teach.prototypes import DEFAULT_POOLING
from rns.teach.support import (
    DEFAULT_BATCH_SIZE,
    AddReport,
    CheckedSupport,
    FeatureBackbone,
    ProgressCallback,
    add_checked_supports,
    check_supports,
)


@dataclass
class ImportReport:
    """What an import added (`added`, in the order of the export) and what it could not use."""

    class_names: list[str]
    added: AddReport = field(default_factory=AddReport)
    names: list[str] = field(default_factory=list)  # the item each outcome of `added` came from
    problems: list[ItemProblem] = field(default_factory=list)
    empty: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """1 when any item had a problem (the others were still added), else 0."""
        return 1 if self.problems else 0


def check_staged(
    pairs: list[tuple[os.PathLike, os.PathLike]], names: list[str], mapping: LabelMapping,
    problems: list[ItemProblem], progress: ProgressCallback | None = None,
) -> tuple[list[CheckedSupport], list[str]]:
    """`rns.teach.support.check_supports` item by item: a failing item becomes a problem, not an abort."""
    checked: list[CheckedSupport] = []
    kept: list[str] = []
    seen: dict[str, str] = {}
    for number, ((image, mask), name) in enumerate(zip(pairs, names, strict=True), start=1):
        try:
            (pair,) = check_supports([(image, mask)], mapping)
        except InputError as error:
            problems.append(ItemProblem(name, str(error).replace(str(mask), "its mask")))
            continue
        if pair.source_id in seen:
            problems.append(ItemProblem(name, f"same photo as {seen[pair.source_id]}; it is added once"))
            continue
        seen[pair.source_id] = name
        checked.append(pair)
        kept.append(name)
        if progress:
            progress("checking", number, len(pairs))
    return checked, kept


def add_imported(
    imported: ImportedSet,
    memory_path: str | os.PathLike,
    load_backbone: Callable[[], FeatureBackbone],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: ProgressCallback | None = None,
    pooling: str = DEFAULT_POOLING,
) -> ImportReport:
    """Add every usable item of `imported` to the memory at `memory_path` (created if absent).

    `load_backbone` is called only once every item has been read and checked, so a broken export fails
    in seconds, before the model loads. Raises `InputError` when no item labels anything. `pooling` is
    `rns.teach.support`'s (how mask pixels weigh patches).
    """
    from support_memory import SupportMemory

    mapping = LabelMapping(values=dict(enumerate(imported.class_names)))
    with staged_items(imported) as staged:
        report = ImportReport(class_names=list(imported.class_names), problems=staged.problems,
                              empty=staged.empty, notes=staged.notes)
        checked, report.names = check_staged(staged.pairs, staged.names, mapping, report.problems, progress)
        if not checked:
            if report.problems:
                return report
            raise InputError(
                f"{imported.source}: no image labels any pixel of {', '.join(imported.class_names)}; "
                "nothing to add (check --categories)"
            )
        backbone = load_backbone()
        memory = SupportMemory.open(memory_path, create=True)
        report.added = add_checked_supports(backbone, memory, checked, mapping, batch_size=batch_size,
                                            progress=progress, pooling=pooling)
    return report
