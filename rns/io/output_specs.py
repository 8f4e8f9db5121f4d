"""The values of `--save` and `--export`, parsed in a module that imports nothing heavy.

`rns segment` checks them before it imports numpy, torch or the model, so a typo is refused in
milliseconds. `rns.io.outputs` and `rns.formats.run_export` re-export these names.
"""

from __future__ import annotations

from collections.abc import Iterable

from rns.errors import InputError

SAVE_KINDS: tuple[str, ...] = ("labels", "overlay", "summary", "probs", "rle")
DEFAULT_SAVE: frozenset[str] = frozenset({"labels", "overlay", "summary"})
EXPORT_FORMATS: tuple[str, ...] = ("coco", "yolo")


def parse_save(spec: str | Iterable[str]) -> frozenset[str]:
    """The set of output kinds from `--save` ("labels,overlay", "all", or an iterable of names).

    Raises `InputError` for an unknown name, listing the valid ones.
    """
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    chosen: set[str] = set()
    for raw in names:
        name = raw.strip().lower()
        if not name:
            continue
        if name == "all":
            chosen.update(SAVE_KINDS)
        elif name in SAVE_KINDS:
            chosen.add(name)
        else:
            raise InputError(
                f"unknown output {raw.strip()!r} in --save: choose from {', '.join(SAVE_KINDS)}, all"
            )
    if not chosen:
        raise InputError(f"--save names no output: choose from {', '.join(SAVE_KINDS)}, all")
    return frozenset(chosen)


def needs_probabilities(save: Iterable[str]) -> bool:
    """Whether the segmenter must keep per-class probabilities for these outputs (they are large)."""
    return "probs" in set(save)


def parse_export(spec: str | None) -> frozenset[str]:
    """The formats of `--export` ("coco", "yolo" or "coco,yolo"); empty for None."""
    if spec is None:
        return frozenset()
    names = {part.strip().lower() for part in spec.split(",") if part.strip()}
    unknown = sorted(names - set(EXPORT_FORMATS))
    if unknown or not names:
        raise InputError(f"--export {spec!r}: choose from {', '.join(EXPORT_FORMATS)} (comma-separated)")
    return frozenset(names)


def save_kinds_for(save: Iterable[str], exports: Iterable[str]) -> frozenset[str]:
    """The per-image outputs a run must keep for its exports (the export is built from them)."""
    kinds = set(save)
    exports = set(exports)
    if exports:
        kinds.add("labels")
    if "coco" in exports:
        kinds.add("probs")
    return frozenset(kinds)
