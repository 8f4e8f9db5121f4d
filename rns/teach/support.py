"""Adding supports: labelled example images become per-class prototypes in the support memory.

The mask conventions live in `rns.teach.mask_conventions` and the pooling math in `rns.teach.prototypes`;
this module is the whole "teach it an example" operation. `add_supports` checks every input before touching
anything, so one bad file leaves the memory as it was, then extracts and commits in batches (each an atomic
commit of the memory), so a long bulk run that is killed keeps the batches it finished and a re-run skips
them as unchanged without recomputing their features.

The memory holds one entry (source) per (image, class), with id `<image content hash>#<class>`: a photo
may get its masks of several classes in separate calls, and a mask replaces the entries of exactly the
classes its mapping names (one it names but does not label is removed for that image), never others.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from PIL import Image

from rns.backbone.geometry import ImageGeometry
from rns.choices import DEFAULT_BATCH_SIZE
from rns.errors import InputError
from rns.io.imageio import image_content_hash, load_image, load_mask
from rns.teach.fingerprints import check_memory_fingerprint, support_fingerprint
from rns.teach.mask_conventions import IGNORE_LABEL, LabelMapping, class_content_key, mask_content_key
from rns.teach.prototypes import DEFAULT_POOLING, extract_prototypes
from rns.teach.support_ids import image_of_source, support_source_id
from support_memory import SourceEntry, SupportMemory
from support_memory.manifest import name_key

__all__ = ["add_supports", "add_checked_supports", "check_supports", "image_of_source", "support_source_id",
           "CheckedSupport", "AddReport", "ImageOutcome"]  # fmt: skip

ProgressCallback = Callable[[str, int, int], None]
"""`progress(stage, done, total)`; stage is "checking" (inputs validated) or "extracting"."""

class FeatureBackbone(Protocol):
    """What adding supports needs of a backbone (`rns.backbone.ClipBackbone` is one); tests use fakes."""

    fingerprint: dict[str, Any]

    def support_features(self, image: Image.Image) -> torch.Tensor: ...

    def geometry(self, width: int, height: int) -> ImageGeometry: ...


# --------------------------------------------------------------------------------------- adding
@dataclass(frozen=True)
class ImageOutcome:
    """What happened to one support image: its status is "added", "replaced" or "unchanged".

    "added": the memory held none of the classes this mask speaks for on this image; "replaced": it held
    some and something changed; "unchanged": every entry was already there as given. `source_id` is the
    image's content hash (its entries' ids start with it).
    """

    image: Path
    mask: Path
    source_id: str
    status: str
    classes: list[str]


@dataclass
class AddReport:
    """The result of one `add_supports` call, in input order."""

    outcomes: list[ImageOutcome] = field(default_factory=list)

    def count(self, status: str) -> int:
        """How many images ended with `status` ("added", "replaced" or "unchanged")."""
        return sum(outcome.status == status for outcome in self.outcomes)

    @property
    def classes(self) -> list[str]:
        """Every class that the added images label, in order of first appearance."""
        names: list[str] = []
        for outcome in self.outcomes:
            names.extend(name for name in outcome.classes if name not in names)
        return names


@dataclass(frozen=True)
class CheckedSupport:
    """One validated (image, mask) pair: its files, identity, per-class labelling keys, classes labelled.

    Made by `check_supports`; `add_checked_supports` takes a list of them, so a caller (the CLI) can
    validate every input before spending seconds on loading a model. `source_id` is the image's content
    hash; `class_keys` holds, per class the mask labels, the key of its pixels; `mapped` every class the
    mapping names (the classes this mask speaks for, labelled or not).
    """

    image: Path
    mask: Path
    source_id: str
    class_keys: dict[str, str]
    class_names: list[str]
    mapped: tuple[str, ...] = ()


def _check_pair(image_path: Path, mask_path: Path, mapping: LabelMapping) -> CheckedSupport:
    """Decode and validate one image/mask pair, or raise `InputError` naming the file."""
    image = load_image(image_path)
    mask = load_mask(mask_path)
    if tuple(mask.shape[:2]) != (image.height, image.width):
        raise InputError(
            f"{mask_path}: mask is {mask.shape[1]}x{mask.shape[0]} but its image {image_path} is "
            f"{image.width}x{image.height}; a mask must have its image's size (check the pairing)"
        )
    labels = mapping.label_map(mask, mask_path)
    names = mapping.class_names
    present = [int(p) for p in np.unique(labels) if p != IGNORE_LABEL]
    mask_key = mask_content_key(labels, names)
    return CheckedSupport(
        image=image_path,
        mask=mask_path,
        source_id=image_content_hash(image_path),
        class_keys={names[p]: class_content_key(mask_key, names[p]) for p in present},
        class_names=[names[p] for p in present],
        mapped=tuple(names),
    )


def check_class_texts(class_texts: dict[str, str | None] | None, mapping: LabelMapping) -> None:
    """Refuse a text for a class the mapping does not name (a typo would otherwise go unnoticed)."""
    for name in class_texts or {}:
        if name_key(name) not in {name_key(known) for known in mapping.class_names}:
            raise InputError(
                f"text given for class {name!r}, which the masks' mapping does not name "
                f"(it names: {', '.join(mapping.class_names)}); name a class the masks label"
            )


def check_supports(
    pairs: Sequence[tuple[str | os.PathLike, str | os.PathLike]],
    mapping: LabelMapping,
    *,
    progress: ProgressCallback | None = None,
) -> list[CheckedSupport]:
    """Validate every pair (decodable, same size, mapped, non-empty, no image twice) before any work."""
    if not pairs:
        raise InputError("no support images given; pass IMAGE MASK pairs (or --images DIR --masks DIR)")
    checked: list[CheckedSupport] = []
    seen: dict[str, Path] = {}
    for done, (image, mask) in enumerate(pairs, start=1):
        pair = _check_pair(Path(image), Path(mask), mapping)
        if pair.source_id in seen:
            raise InputError(
                f"{pair.image}: same image content as {seen[pair.source_id]}; give each support image once"
            )
        seen[pair.source_id] = pair.image
        checked.append(pair)
        if progress:
            progress("checking", done, len(pairs))
    return checked


def add_supports(
    backbone: FeatureBackbone,
    memory: SupportMemory,
    pairs: Sequence[tuple[str | os.PathLike, str | os.PathLike]],
    mapping: LabelMapping,
    *,
    class_texts: dict[str, str | None] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: ProgressCallback | None = None,
    pooling: str = DEFAULT_POOLING,
) -> AddReport:
    """Add labelled example images to the support memory; returns what happened to each.

    `pairs` are (image, mask) paths; `mapping` says how mask values become class names. `class_texts`
    sets a class's text prompt where it differs from its name, or `None` for a class with no usable
    name (an instance such as "my-backpack"); classes not in it keep the memory's default (their name).

    Every pair is validated first, so an `InputError` leaves the memory untouched. An image is
    identified by its content hash (so a renamed copy is the same support); re-adding it with the
    same labelling is "unchanged" (its features are not recomputed), with another labelling
    "replaced". Commits go in batches of `batch_size` images, each atomic. A memory built with another
    backbone refuses the rows with its own `FingerprintMismatchError`.
    """
    checked = check_supports(pairs, mapping, progress=progress)
    return add_checked_supports(backbone, memory, checked, mapping, class_texts=class_texts,
                                batch_size=batch_size, progress=progress, pooling=pooling)


def add_supports_at(
    memory_path: str | os.PathLike,
    pairs: Sequence[tuple[str | os.PathLike, str | os.PathLike]],
    mapping: LabelMapping,
    load_backbone: Callable[[], FeatureBackbone],
    *,
    class_texts: dict[str, str | None] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: ProgressCallback | None = None,
    pooling: str = DEFAULT_POOLING,
) -> AddReport:
    """`add_supports` into the memory at `memory_path` (created if absent), what `rns add-support` runs.

    Every pair is checked and the memory found writable before `load_backbone` is called, so a typo or a
    read-only memory fails in milliseconds instead of after a model load.
    """
    from rns.teach.memory_access import refuse_unwritable_memory

    checked = check_supports(pairs, mapping, progress=progress)
    refuse_unwritable_memory(memory_path)
    backbone = load_backbone()
    memory = SupportMemory.open(memory_path, create=True)
    return add_checked_supports(backbone, memory, checked, mapping, class_texts=class_texts,
                                batch_size=batch_size, progress=progress, pooling=pooling)


def add_checked_supports(
    backbone: FeatureBackbone,
    memory: SupportMemory,
    checked: Sequence[CheckedSupport],
    mapping: LabelMapping,
    *,
    class_texts: dict[str, str | None] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: ProgressCallback | None = None,
    pooling: str = DEFAULT_POOLING,
) -> AddReport:
    """`add_supports` for pairs already validated by `check_supports` with the same `mapping`.

    `pooling` ("count", the reference's, or "area", see `rns.teach.prototypes`) is recorded in the memory's
    fingerprint: one memory holds prototypes pooled one way only.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    check_class_texts(class_texts, mapping)
    fingerprint = support_fingerprint(backbone.fingerprint, pooling)
    # A memory built under another backbone refuses these rows: say so before extracting anything.
    check_memory_fingerprint(memory, backbone.fingerprint, pooling)
    known = {source.source_id: source for source in memory.sources()}
    statuses: dict[str, str] = {}
    pending: list[_PendingImage] = []

    def commit() -> None:
        if not pending:
            return
        entries = [entry for item in pending for entry in item.entries]
        drops = {source_id: names for item in pending for source_id, names in item.drops.items()}
        results = iter(memory.put_sources(entries, fingerprint=fingerprint, drop=drops))
        for item in pending:
            changed = any(next(results) != "unchanged" for _ in item.entries) or bool(item.drops)
            statuses[item.pair.source_id] = "unchanged" if not changed else item.status_if_changed
        pending.clear()

    for done, pair in enumerate(checked, start=1):
        item = _plan_image(pair, known, class_texts)
        if item is None:
            statuses[pair.source_id] = "unchanged"
        else:
            if item.stale:
                item.entries = _extract_entries(backbone, pair, mapping, item.stale, class_texts, pooling)
            pending.append(item)
            if len(pending) >= batch_size:
                commit()
        if progress:
            progress("extracting", done, len(checked))
    commit()
    # Names as the memory keeps them: "Sky" added to a memory that knows "sky" is reported as "sky".
    stored = {name_key(info.name): info.name for info in memory.classes()}
    return AddReport(
        outcomes=[
            ImageOutcome(
                image=pair.image,
                mask=pair.mask,
                source_id=pair.source_id,
                status=statuses[pair.source_id],
                classes=[stored.get(name_key(name), name) for name in pair.class_names],
            )
            for pair in checked
        ]
    )


@dataclass
class _PendingImage:
    """What one image changes in the memory: entries to put (one per stale class) and entries to drop."""

    pair: CheckedSupport
    stale: list[str]
    drops: dict[str, list[str] | None]
    status_if_changed: str
    entries: list[SourceEntry] = field(default_factory=list)


def _plan_image(
    pair: CheckedSupport, known: dict[str, Any], class_texts: dict[str, str | None] | None
) -> _PendingImage | None:
    """Decide what adding `pair` changes, from the memory's entries; None when it changes nothing.

    A labelled class is stale when its entry is missing, was made from other pixels, or lost rows to a
    removal; explicit texts make every labelled class stale (the memory records them with the entry). A
    class the mapping names but the mask does not label loses its entry for this image. An entry stored
    before entries were per class (one per image, id = the image hash) loses the classes this mask
    speaks for.
    """
    ids = {name: support_source_id(pair.source_id, name) for name in pair.mapped}
    stale = []
    for name, key in pair.class_keys.items():
        entry = known.get(ids[name])
        if class_texts or entry is None or entry.content_key != key or entry.pruned:
            stale.append(name)
    drops: dict[str, list[str] | None] = {ids[n]: None for n in pair.mapped
                                          if n not in pair.class_keys and ids[n] in known}  # fmt: skip
    if pair.source_id in known:
        drops[pair.source_id] = list(pair.mapped)
    if not stale and not drops:
        return None
    existed = any(source_id in known for source_id in ids.values()) or pair.source_id in known
    return _PendingImage(pair, stale, drops, "replaced" if existed else "added")


def _extract_entries(
    backbone: FeatureBackbone,
    pair: CheckedSupport,
    mapping: LabelMapping,
    wanted: list[str],
    class_texts: dict[str, str | None] | None,
    pooling: str = DEFAULT_POOLING,
) -> list[SourceEntry]:
    """Features and prototypes of one validated pair: one memory entry per class in `wanted`."""
    image = load_image(pair.image)
    labels = mapping.label_map(load_mask(pair.mask), pair.mask)
    geometry = backbone.geometry(image.width, image.height)
    with torch.inference_mode():
        features = backbone.support_features(image)
        vectors, positions = extract_prototypes(features, labels, range(len(mapping.class_names)),
                                                geometry, pooling)
    rows = vectors.cpu().numpy().astype(np.float32, copy=False)
    texts = {name_key(name): text for name, text in (class_texts or {}).items()}
    meta = {"image": str(pair.image), "mask": str(pair.mask), "labels": mapping.to_meta(),
            "added": datetime.now(timezone.utc).isoformat(timespec="seconds")}  # fmt: skip
    entries = []
    for row, position in enumerate(positions):
        name = mapping.class_names[position]
        if name not in wanted:
            continue
        entries.append(SourceEntry(
            source_id=support_source_id(pair.source_id, name),
            vectors=rows[row : row + 1],
            class_names=[name],
            content_key=pair.class_keys[name],
            class_texts={name: texts[name_key(name)]} if name_key(name) in texts else None,
            meta=meta,
        ))  # fmt: skip
    return entries
