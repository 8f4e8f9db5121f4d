"""The support photos of a memory, found again where the user keeps them, with their ground truth.

The memory keeps prototypes, never pixels; each entry (an image's example of one class) records the image
and mask paths it was added from and how the mask's values were read (`labels`, see
`LabelMapping.to_meta`). The audit reads those files again and trusts them only when they are what was
added: the photo's content hash must be the entry's image id and the mask must give the entry's content
key; anything else (a file gone, moved, edited, or an entry from before paths and conventions were
recorded) is skipped with a reason and counted, never guessed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from rns.errors import InputError
from rns.evaluate.evaluation import IGNORE_INDEX
from rns.io.imageio import image_content_hash, load_image, load_mask
from rns.teach.mask_conventions import IGNORE_LABEL, LabelMapping, class_content_key, mask_content_key
from rns.teach.support_ids import image_of_source
from support_memory import SourceInfo

SKIP_GONE = "photo or mask file gone"
SKIP_CHANGED = "photo or mask changed since it was added"
SKIP_UNRECORDED = "path or mask convention not recorded (added by an older rns, the UI or an import)"
SKIP_UNREADABLE = "photo or mask no longer readable"


@dataclass
class SupportPhoto:
    """One support photo: its image id (content hash), path, and the memory entries it holds."""

    image_id: str
    image_path: Path
    entries: list[SourceInfo] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.image_path.name


@dataclass
class PhotoSet:
    """The photos the audit can use, and how many entries it could not, by reason."""

    photos: list[SupportPhoto]
    skipped: Counter[str]
    skipped_photos: int


def _entry_files(info: SourceInfo) -> tuple[Path, Path, LabelMapping] | None:
    image, mask, labels = info.meta.get("image"), info.meta.get("mask"), info.meta.get("labels")
    if not image or not mask:
        return None
    if labels:
        try:
            return Path(image), Path(mask), LabelMapping.from_meta(labels)
        except (ValueError, KeyError, TypeError):
            return None
    # Entries added before the convention was recorded: a one-class binary mask is the only unambiguous one.
    if len(info.class_names) == 1:
        return Path(image), Path(mask), LabelMapping.single_class(info.class_names[0])
    return None


def find_photos(sources: list[SourceInfo]) -> PhotoSet:
    """Group the entries by photo and keep those whose files are recorded and still there."""
    skipped: Counter[str] = Counter()
    photos: dict[str, SupportPhoto] = {}
    gone_photos: set[str] = set()
    for info in sources:
        files = _entry_files(info)
        image_id = image_of_source(info.source_id)
        if files is None:
            skipped[SKIP_UNRECORDED] += 1
            continue
        image, mask, _ = files
        if not image.is_file() or not mask.is_file():
            skipped[SKIP_GONE] += 1
            gone_photos.add(image_id)
            continue
        photo = photos.setdefault(image_id, SupportPhoto(image_id, image))
        photo.entries.append(info)
    return PhotoSet(list(photos.values()), skipped, len(gone_photos - set(photos)))


def load_truth(photo: SupportPhoto, class_names: list[str], skipped: Counter[str]
               ) -> tuple[Image.Image, np.ndarray] | None:
    """The photo and its ground truth as output label ids (`class_names` order, 255 = no label), or None.

    Each entry contributes its class's pixels from its own mask (a photo's classes may come from separate
    masks); a pixel two entries claim for different classes counts for nothing. Entries whose files no
    longer match what was added are dropped from the photo (and counted); a photo left with none is None.
    """
    if image_content_hash(photo.image_path) != photo.image_id:
        skipped[SKIP_CHANGED] += len(photo.entries)
        return None
    try:
        image = load_image(photo.image_path)
    except InputError:
        skipped[SKIP_UNREADABLE] += len(photo.entries)
        return None
    folded = [name.casefold() for name in class_names]
    truth = np.full((image.height, image.width), IGNORE_INDEX, dtype=np.int64)
    claimed = np.zeros((image.height, image.width), dtype=np.int16)
    kept: list[SourceInfo] = []
    label_maps: dict[tuple[Path, str], tuple[np.ndarray, list[str]]] = {}
    for info in photo.entries:
        _, mask_path, mapping = _entry_files(info)  # type: ignore[misc]
        key = (mask_path, mapping.to_meta())
        if key not in label_maps:
            try:
                label_maps[key] = (mapping.label_map(load_mask(mask_path), mask_path), mapping.class_names)
            except InputError:
                label_maps[key] = (np.zeros((0, 0), dtype=np.int32), [])
        labels, names = label_maps[key]
        name = info.class_names[0] if info.class_names else ""
        position = next((i for i, n in enumerate(names) if n.casefold() == name.casefold()), None)
        if (position is None or labels.shape != truth.shape
                or class_content_key(mask_content_key(labels, names), name) != info.content_key):
            skipped[SKIP_CHANGED] += 1
            continue
        kept.append(info)
        if name.casefold() not in folded:
            continue  # a class this audit does not segment: its pixels count for nothing
        pixels = (labels == position) & (labels != IGNORE_LABEL)
        label = folded.index(name.casefold())
        clash = pixels & (claimed > 0) & (truth != label)
        truth[pixels & (claimed == 0)] = label
        claimed[pixels] += 1
        truth[clash] = IGNORE_INDEX
    photo.entries = kept
    if not kept:
        return None
    return image, truth
