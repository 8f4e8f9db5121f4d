"""What the page and the JSON API do, over the Python API: open, segment, teach, undo, list, remove.

No web code here, so the whole loop is testable without a server. Rules that matter:

- Teaching goes through `rns.teach.support.add_checked_supports`, the same path as `rns add-support`: the
  photo is identified by the hash of its bytes (teaching the same photo again replaces its example, identical
  masks change nothing), and the memory commits atomically under its writer lock, so concurrent teaches
  (threads here, or another `rns add-support` process) queue instead of losing rows.
- Teaching uses the photo's support features, computed on its first teach and then cached
  (`CachedFeatureBackbone`); a re-segment after teaching rebuilds only the cheap `Segmenter` (text
  features are cached by the backbone) on the cached test-time features, so it never runs the backbone.
- One re-entrant lock serialises everything that reads or writes the memory object, which is not meant
  to be shared between threads while it changes.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from rns.errors import InputError
from rns.paths import default_memory_path
from rns.segment.pipeline import Segmenter, SegmentOptions, open_memory_if_present
from rns.segmentation import Segmentation
from rns.teach.fingerprints import check_memory_fingerprint, support_fingerprint
from rns.teach.mask_conventions import IGNORE_VALUE, LabelMapping, clean_class_name
from rns.teach.prototypes import DEFAULT_POOLING
from rns.teach.support import add_checked_supports, check_supports
from rns.teach.support_ids import image_of_source
from rns.ui.config import UiConfig
from rns.ui.photos import OpenPhoto, PhotoCache, pixel_digest
from support_memory import SourceEntry, SupportMemory

MAX_CLASSES = 255  # ids travel as 8-bit PNGs; 255 means "unlabelled"
_SEGMENTERS_KEPT = 8


class CachedFeatureBackbone:
    """The backbone as `rns.teach.support` sees it (`FeatureBackbone`), answering from the open photo's cache.

    Any other image (there is none on the UI path, but the protocol allows it) goes to the real backbone.
    """

    def __init__(self, backbone: Any, photo: OpenPhoto) -> None:
        self.backbone = backbone
        self.photo = photo
        self.fingerprint = backbone.fingerprint
        self.computed = False

    def support_features(self, image: Image.Image) -> torch.Tensor:
        if pixel_digest(image) == self.photo.digest:
            features, self.computed = self.photo.support_features(self.backbone)
            return features
        self.computed = True
        return self.backbone.support_features(image)

    def geometry(self, width: int, height: int) -> Any:
        return self.backbone.geometry(width, height)


@dataclass
class SegmentResult:
    """A segmentation plus how long it took and whether the backbone ran for it."""

    segmentation: Segmentation
    seconds: float
    computed_features: bool


@dataclass
class _UndoStep:
    """How to take back one teach: the photo's entries (one per class) as they were before it."""

    source_id: str  # the photo's content hash; its entries' ids start with it
    photo_name: str
    previous: list[SourceEntry]


@dataclass
class TeachOutcome:
    """What one teach stored."""

    status: str
    source_id: str
    classes: list[str]
    prototypes: int
    seconds: float
    computed_features: bool = False
    memory: dict[str, Any] = field(default_factory=dict)


class UiSession:
    """The state of one `rns ui` server: backbone, memory, open photos, segmenters and the undo stack."""

    def __init__(
        self,
        backbone: Any,
        config: UiConfig | None = None,
        *,
        options: SegmentOptions | None = None,
        correction_regions: Any | None = None,
        prefetch_support: bool = True,
    ) -> None:
        self.backbone = backbone
        self.config = config or UiConfig()
        self.options = options or SegmentOptions()
        self.memory_path = default_memory_path(self.config.memory_path)
        self.memory: SupportMemory | None = open_memory_if_present(self.memory_path)
        if self.memory is not None:
            check_memory_fingerprint(self.memory, backbone.fingerprint)
        self.photos = PhotoCache(self.config.open_photos, self.config.max_pixels, self.config.open_pixels)
        # Requests that decode or segment a photo take a slot; background support passes use a free one.
        self.photo_slots = threading.BoundedSemaphore(self.config.photos_in_flight)
        self._correction_regions = correction_regions
        # Compute a photo's support features in the background after its first segment (see OpenPhoto).
        self.prefetch_support = prefetch_support
        self._lock = threading.RLock()
        self._segmenters: OrderedDict[tuple[str, ...], tuple[int, Segmenter]] = OrderedDict()
        self._undo: list[_UndoStep] = []

    # -- photos --------------------------------------------------------------------------------------------
    def open_photo(self, data: bytes, name: str) -> OpenPhoto:
        """Decode (or find) an uploaded photo; `InputError` for anything that is not a usable image."""
        return self.photos.open(data, name)

    def correction_regions(self, photo: OpenPhoto) -> np.ndarray:
        """The photo's click-to-assign regions (superpixels unless SAM was configured), computed once."""
        if self._correction_regions is None:
            from rns.regions import SuperpixelProposer

            self._correction_regions = SuperpixelProposer()
        return photo.region_map(self._correction_regions.propose)

    # -- segmenting ----------------------------------------------------------------------------------------
    def segment(self, photo: OpenPhoto, classes: list[str]) -> SegmentResult:
        """Segment an open photo with the memory as it is now; the backbone runs once per photo."""
        if len(classes) >= MAX_CLASSES:
            raise InputError(f"{len(classes)} classes given; segment at most {MAX_CLASSES - 1} at once")
        started = time.perf_counter()
        features, computed = photo.dense_features(self.backbone)
        backbone_seconds = time.perf_counter() - started if computed else 0.0
        with self._lock, torch.inference_mode():
            segmenter = self._segmenter(classes)
            segmentation = segmenter.segment_features(photo.image, features,
                                                      backbone_seconds=backbone_seconds)  # fmt: skip
        if self.prefetch_support:
            photo.prefetch_support(self.backbone, self.photo_slots)
        return SegmentResult(segmentation, time.perf_counter() - started, computed)

    def _segmenter(self, classes: list[str]) -> Segmenter:
        """The segmenter for these classes and the memory's current commit (rebuilt when either changes).

        A rebuild re-reads the memory's class table and class-level prototypes, which is what makes a
        taught example count at once; it costs milliseconds since text features are cached.
        """
        self._refresh_memory()
        commit = self._commit()
        key = tuple(classes)
        cached = self._segmenters.get(key)
        if cached is not None and cached[0] == commit:
            self._segmenters.move_to_end(key)
            return cached[1]
        segmenter = Segmenter(self.backbone, list(classes) or None, memory=self.memory, options=self.options)
        self._segmenters[key] = (commit, segmenter)
        self._segmenters.move_to_end(key)
        while len(self._segmenters) > _SEGMENTERS_KEPT:
            self._segmenters.popitem(last=False)
        return segmenter

    def _refresh_memory(self) -> None:
        """Pick up commits made by other processes (e.g. `rns add-support` while the page is open)."""
        if self.memory is None:
            self.memory = open_memory_if_present(self.memory_path)
        else:
            self.memory.refresh()

    def _commit(self) -> int:
        return int(self.memory.stats()["commit"]) if self.memory is not None else -1

    # -- teaching ------------------------------------------------------------------------------------------
    def teach(self, photo: OpenPhoto, mask: np.ndarray, classes: list[str]) -> TeachOutcome:
        """Add the photo with its corrected mask (ids into `classes`, 255 unlabelled) to the memory."""
        started = time.perf_counter()
        names = check_teach_classes(classes)
        check_teach_mask(mask, names, (photo.image.height, photo.image.width))
        mapping = LabelMapping(values=dict(enumerate(names)))
        # The one slow step of a first teach, done before taking the lock so segmenting is not held up.
        _support, computed = photo.support_features(self.backbone)
        with tempfile.TemporaryDirectory(prefix="rns-ui-") as folder:
            # The photo's own bytes, so its identity is the one `rns add-support` gives the same file.
            image_path = Path(folder) / f"photo{photo.suffix}"
            image_path.write_bytes(photo.data)
            mask_path = Path(folder) / "mask.png"
            Image.fromarray(mask.astype(np.uint8), mode="L").save(mask_path)
            (checked,) = check_supports([(image_path, mask_path)], mapping)
            with self._lock:
                memory = self._writable_memory()
                previous = _image_entries(memory, checked.source_id)
                features = CachedFeatureBackbone(self.backbone, photo)
                report = add_checked_supports(features, memory, [checked], mapping)
                (outcome,) = report.outcomes
                if outcome.status != "unchanged":
                    self._undo.append(_UndoStep(outcome.source_id, photo.name, previous))
                prototypes = sum(info.n_prototypes for info in memory.sources()
                                 if image_of_source(info.source_id) == outcome.source_id)  # fmt: skip
                summary = self.memory_summary()
        return TeachOutcome(outcome.status, outcome.source_id, outcome.classes, prototypes,
                            time.perf_counter() - started, computed or features.computed,
                            summary)  # fmt: skip

    def _writable_memory(self) -> SupportMemory:
        if self.memory is None:
            self.memory = SupportMemory.open(self.memory_path, create=True)
        else:
            self.memory.refresh()
        return self.memory

    def undo(self) -> dict[str, Any]:
        """Take back the last teach: the photo's entries become what they were before it, in one commit."""
        with self._lock:
            if not self._undo:
                raise InputError("nothing to undo: no teach since the server started (or all were undone)")
            step = self._undo.pop()
            memory = self._writable_memory()
            current = [source.source_id for source in memory.sources()
                       if image_of_source(source.source_id) == step.source_id]  # fmt: skip
            # The earlier rows were made under the memory's own fingerprint (backbone and pooling).
            fingerprint = memory.fingerprint or support_fingerprint(self.backbone.fingerprint,
                                                                    DEFAULT_POOLING)  # fmt: skip
            memory.put_sources(step.previous, fingerprint=fingerprint, drop=dict.fromkeys(current))
            action = "restored" if step.previous else "removed"
            return {"undone": action, "photo": step.photo_name, "source_id": step.source_id,
                    "memory": self.memory_summary()}  # fmt: skip

    # -- the memory panel ----------------------------------------------------------------------------------
    def memory_summary(self) -> dict[str, Any]:
        """Classes with their counts, for the memory panel and the API."""
        with self._lock:
            self._refresh_memory()
            memory = self.memory
            classes = [] if memory is None else [
                {"name": info.name, "prototypes": info.n_prototypes, "photos": info.n_sources,
                 "text": info.text}
                for info in memory.classes()
            ]  # fmt: skip
            return {
                "path": str(self.memory_path),
                "exists": memory is not None,
                "classes": classes,
                # Entries are per (photo, class); the panel counts photos.
                "photos": 0 if memory is None else len({image_of_source(info.source_id)
                                                        for info in memory.sources()}),  # fmt: skip
                "prototypes": sum(entry["prototypes"] for entry in classes),
                "undo_steps": len(self._undo),
            }

    def remove_class(self, name: str) -> dict[str, Any]:
        """Remove a class and all its examples from the memory (what `rns memory remove --class` does)."""
        with self._lock:
            self._refresh_memory()
            if self.memory is None or name not in {info.name for info in self.memory.classes()}:
                raise InputError(f"the memory has no class {name!r}; pick one from the memory panel")
            self.memory.remove_class(name)
            return self.memory_summary()


def check_teach_classes(classes: list[str]) -> list[str]:
    """Clean class names for a taught mask: non-empty, at most 255 of them (id 255 means unlabelled)."""
    names = [clean_class_name(name) for name in classes]
    if not names or any(not name for name in names):
        raise InputError("classes must name every mask id 0..n-1 in order, comma-separated, none empty")
    if len(names) > MAX_CLASSES:
        raise InputError(
            f"{len(names)} classes given; a taught mask holds at most {MAX_CLASSES} (255 = unlabelled)"
        )
    return names


def check_teach_mask(mask: np.ndarray, names: list[str], size: tuple[int, int]) -> None:
    """The mask must have the photo's size, use only ids of `names` (or 255) and label something."""
    if mask.ndim != 2:
        raise InputError(f"the mask must be one channel of class ids, got shape {tuple(mask.shape)}")
    if tuple(mask.shape) != size:
        raise InputError(
            f"the mask is {mask.shape[1]}x{mask.shape[0]} but the photo is {size[1]}x{size[0]}; "
            "send a mask of the photo's size"
        )
    values = np.unique(mask)
    unknown = [int(v) for v in values if not (0 <= int(v) < len(names) or int(v) == IGNORE_VALUE)]
    if unknown:
        raise InputError(
            f"the mask has ids {unknown[:8]} but classes names only ids 0..{len(names) - 1} "
            "(255 = unlabelled); name every id in classes"
        )
    if values.size == 1 and int(values[0]) == IGNORE_VALUE:
        raise InputError("the mask labels no pixel (all 255): assign a class to some pixels first")


def _image_entries(memory: SupportMemory, image_id: str) -> list[SourceEntry]:
    """A photo's stored entries (one per class), as `put_sources` takes them back (for undo).

    An entry that lost rows to a class removal is restored with no content key, so that adding its mask
    again re-extracts it instead of calling it unchanged.
    """
    names = {info.id: info.name for info in memory.classes()}
    entries = []
    for info in memory.sources():
        if image_of_source(info.source_id) != image_id:
            continue
        vectors, class_ids = memory.rows(memory.source_rows(info.source_id))
        entries.append(SourceEntry(info.source_id, vectors, [names[int(c)] for c in class_ids],
                                   "" if info.pruned else info.content_key, meta=dict(info.meta) or None))
    return entries
