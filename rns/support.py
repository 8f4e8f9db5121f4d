"""Adding supports: labelled example images become per-class prototypes in the support memory.

The mask conventions live in `rns.labels` and the pooling math in `rns.prototypes`; this module is the
whole "teach it an example" operation. `add_supports` checks every input before touching anything, so
one bad file leaves the memory as it was, then extracts and commits in batches (each an atomic commit of
the memory), so a long bulk run that is killed keeps the batches it finished and a re-run skips them as
unchanged without recomputing their features.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from PIL import Image

from rns.backbone.geometry import ImageGeometry
from rns.errors import InputError
from rns.fingerprints import check_memory_fingerprint, support_fingerprint
from rns.imageio import IMAGE_EXTENSIONS, image_content_hash, load_image, load_mask
from rns.labels import IGNORE_LABEL, LabelMapping, mask_content_key
from rns.prototypes import DEFAULT_POOLING, extract_prototypes
from support_memory import SourceEntry, SupportMemory

DEFAULT_BATCH_SIZE = 8
"""Images per memory commit in a bulk add: small enough that a killed run loses little work, large
enough that the per-commit cost (a manifest rewrite) stays negligible next to feature extraction."""

ProgressCallback = Callable[[str, int, int], None]
"""`progress(stage, done, total)`; stage is "checking" (inputs validated) or "extracting"."""

_MAX_LISTED_FILES = 5


class FeatureBackbone(Protocol):
    """What adding supports needs of a backbone (`rns.backbone.ClipBackbone` is one); tests use fakes."""

    fingerprint: dict[str, Any]

    def support_features(self, image: Image.Image) -> torch.Tensor: ...

    def geometry(self, width: int, height: int) -> ImageGeometry: ...


# --------------------------------------------------------------------------------------- pairing
def _files_by_stem(folder: Path, what: str) -> dict[str, Path]:
    if not folder.is_dir():
        raise InputError(f"{what} folder {folder} does not exist or is not a folder: check the path")
    by_stem: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        if path.stem in by_stem:
            raise InputError(
                f"{what} folder {folder} has two files named {path.stem!r} ({by_stem[path.stem].name}, "
                f"{path.name}): keep one, since images and masks are paired by file name"
            )
        by_stem[path.stem] = path
    if not by_stem:
        extensions = ", ".join(sorted(IMAGE_EXTENSIONS))
        raise InputError(f"{what} folder {folder} holds no image files ({extensions})")
    return by_stem


def _listed_files(stems: list[str], folder: Path) -> str:
    shown = ", ".join(stems[:_MAX_LISTED_FILES])
    more = f" and {len(stems) - _MAX_LISTED_FILES} more" if len(stems) > _MAX_LISTED_FILES else ""
    return f"{len(stems)} in {folder} ({shown}{more})"


def pair_by_stem(images_dir: str | os.PathLike, masks_dir: str | os.PathLike) -> list[tuple[Path, Path]]:
    """Pair every image in `images_dir` with the mask of the same file stem in `masks_dir`.

    `a.jpg` pairs with `a.png`. Only the folders' top level is read. A file with no partner is an
    error rather than skipped: a silently dropped example is a class silently weaker than intended.
    """
    images_dir, masks_dir = Path(images_dir), Path(masks_dir)
    images = _files_by_stem(images_dir, "images")
    masks = _files_by_stem(masks_dir, "masks")
    lonely_images = sorted(set(images) - set(masks))
    lonely_masks = sorted(set(masks) - set(images))
    if lonely_images or lonely_masks:
        problems = []
        if lonely_images:
            problems.append(f"images with no mask: {_listed_files(lonely_images, images_dir)}")
        if lonely_masks:
            problems.append(f"masks with no image: {_listed_files(lonely_masks, masks_dir)}")
        raise InputError(
            "; ".join(problems) + "; images and masks pair by file name (a.jpg with a.png): "
            "add or remove files so that every one has its partner"
        )
    return [(images[stem], masks[stem]) for stem in sorted(images)]


# --------------------------------------------------------------------------------------- adding
@dataclass(frozen=True)
class ImageOutcome:
    """What happened to one support image: its status is "added", "replaced" or "unchanged"."""

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
    """One validated (image, mask) pair: its files, identity, labelling key and the classes it labels.

    Made by `check_supports`; `add_checked_supports` takes a list of them, so a caller (the CLI) can
    validate every input before spending seconds on loading a model.
    """

    image: Path
    mask: Path
    source_id: str
    content_key: str
    class_names: list[str]


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
    present = [names[p] for p in np.unique(labels) if p != IGNORE_LABEL]
    return CheckedSupport(
        image=image_path,
        mask=mask_path,
        source_id=image_content_hash(image_path),
        content_key=mask_content_key(labels, names),
        class_names=present,
    )


def check_class_texts(class_texts: dict[str, str | None] | None, mapping: LabelMapping) -> None:
    """Refuse a text for a class the mapping does not name (a typo would otherwise go unnoticed)."""
    for name in class_texts or {}:
        if name not in mapping.class_names:
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

    `pooling` ("count", the reference's, or "area", see `rns.prototypes`) is recorded in the memory's
    fingerprint: one memory holds prototypes pooled one way only.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    check_class_texts(class_texts, mapping)
    fingerprint = support_fingerprint(backbone.fingerprint, pooling)
    # A memory built under another backbone refuses these rows: say so before extracting anything.
    check_memory_fingerprint(memory, backbone.fingerprint, pooling)
    known = {source.source_id: source.content_key for source in memory.sources()}
    # Explicit texts are passed on even for an unchanged source, since the memory records them.
    may_skip = not class_texts
    statuses: dict[str, str] = {}
    pending: list[tuple[CheckedSupport, SourceEntry]] = []

    def commit() -> None:
        if not pending:
            return
        results = memory.put_sources([entry for _, entry in pending], fingerprint=fingerprint)
        for (pair, _), status in zip(pending, results, strict=True):
            statuses[pair.source_id] = status
        pending.clear()

    for done, pair in enumerate(checked, start=1):
        if may_skip and known.get(pair.source_id) == pair.content_key:
            statuses[pair.source_id] = "unchanged"
        else:
            pending.append((pair, _extract_entry(backbone, pair, mapping, class_texts, pooling)))
            if len(pending) >= batch_size:
                commit()
        if progress:
            progress("extracting", done, len(checked))
    commit()

    return AddReport(
        outcomes=[
            ImageOutcome(
                image=pair.image,
                mask=pair.mask,
                source_id=pair.source_id,
                status=statuses[pair.source_id],
                classes=pair.class_names,
            )
            for pair in checked
        ]
    )


def _extract_entry(
    backbone: FeatureBackbone,
    pair: CheckedSupport,
    mapping: LabelMapping,
    class_texts: dict[str, str | None] | None,
    pooling: str = DEFAULT_POOLING,
) -> SourceEntry:
    """Features and prototypes of one validated pair, as the memory's entry."""
    image = load_image(pair.image)
    labels = mapping.label_map(load_mask(pair.mask), pair.mask)
    geometry = backbone.geometry(image.width, image.height)
    with torch.inference_mode():
        features = backbone.support_features(image)
        vectors, positions = extract_prototypes(features, labels, range(len(mapping.class_names)),
                                                geometry, pooling)
    names = [mapping.class_names[p] for p in positions]
    texts = {name: class_texts[name] for name in names if class_texts and name in class_texts}
    return SourceEntry(
        source_id=pair.source_id,
        vectors=vectors.cpu().numpy().astype(np.float32, copy=False),
        class_names=names,
        content_key=pair.content_key,
        class_texts=texts or None,
    )
