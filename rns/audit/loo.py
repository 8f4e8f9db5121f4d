"""Leave-one-out over the support photos: what each retrieved entry does to the photos that retrieve it.

For a support photo A (features computed once), the memory minus A's own entries is searched as
segmentation would search it, the head is fitted and A is scored against its own mask: A's baseline IoU.
Then, for each entry P that A retrieved, the same is done with P left out of the retrieved rows and of its
class's prototype: the IoU change tells whether P helps (positive) or hurts (negative) photos like A.

The estimate is cheaper than a true leave-one-out in one way: without P, the queries that had P among
their k nearest rows do not fetch their (k+1)-th row instead (no new search per P; the retrieved set
only shrinks). So a photo costs one search and 1 + R head fits, R being the entries it retrieves; R grows
with the memory until every query's k neighbours are distinct, then stops (at most k x queries).
All rows are read once into RAM (n x d float32) and searched exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from rns.adapt import AdaptConfig, ClassText, SupportSet, score_queries
from rns.adapt.retrieval import merged_class_prototypes
from rns.backbone.geometry import ImageGeometry
from rns.evaluate.evaluation import ConfusionMatrix
from rns.segment.upsample import upsample_probabilities
from rns.teach.support_ids import image_of_source
from support_memory import SourceInfo


@dataclass
class RowTable:
    """Every live row of the memory in RAM: vector, memory class id, and the entry it belongs to."""

    vectors: torch.Tensor  # [n, d] float32
    class_ids: np.ndarray  # [n] int64, memory class ids
    entry_of_row: np.ndarray  # [n] int64, index into `entries`
    entries: list[SourceInfo]
    image_of_entry: list[str]

    @classmethod
    def read(cls, memory) -> RowTable:
        entries = [info for info in memory.sources() if info.n_prototypes > 0]
        parts = [np.asarray(memory.source_rows(info.source_id), dtype=np.int64) for info in entries]
        rows = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        owners = np.concatenate([np.full(len(p), i, dtype=np.int64) for i, p in enumerate(parts)]) if parts \
            else np.zeros(0, dtype=np.int64)
        vectors, class_ids = memory.rows(rows) if len(rows) else (np.zeros((0, memory.dim or 0)), rows)
        return cls(torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32)),
                   np.asarray(class_ids, dtype=np.int64), owners, entries,
                   [image_of_source(info.source_id) for info in entries])  # fmt: skip


class _Prototypes:
    """Class prototypes of a subset of rows, in the shape `merged_class_prototypes` reads."""

    def __init__(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self.ids, self.vectors = ids, vectors

    def class_prototypes(self, class_ids=None) -> tuple[np.ndarray, np.ndarray]:
        return self.ids, self.vectors


def photo_miou(truth: np.ndarray, labels: np.ndarray, num_classes: int) -> float:
    """Mean IoU of one photo over the classes in its truth or prediction (labelled pixels only), 0..1."""
    matrix = ConfusionMatrix(num_classes)
    matrix.update(truth, labels)
    value = matrix.scores().miou
    return 0.0 if np.isnan(value) else value


@dataclass(frozen=True)
class PhotoRequest:
    """What segmenting in the audit needs, fixed for the whole run."""

    text: ClassText
    class_index: Mapping[int, int | None]
    num_classes: int
    config: AdaptConfig
    unmapped: int | None
    pixel_threshold: float | None


@dataclass
class PhotoOutcome:
    """One photo's leave-one-out: its baseline IoU and, per retrieved entry, the IoU change (in points)."""

    baseline: float
    deltas: dict[int, float]  # entry index -> baseline IoU minus IoU without it, in points
    patches: dict[int, int]  # entry index -> queries that had it among their k nearest
    photo_deltas: dict[str, float]  # other photo's image id -> the same, all its retrieved entries left out


class LeaveOneOut:
    """Scores photos against the memory minus themselves; one instance per audit run."""

    def __init__(self, table: RowTable, request: PhotoRequest) -> None:
        self.table = table
        self.request = request
        self.config = replace(request.config, background_threshold=None)
        class_index = request.class_index
        mapped = [class_index.get(int(c), request.unmapped) for c in table.class_ids]
        self.labels = np.array([-1 if m is None else m for m in mapped], dtype=np.int64)
        self.vectors64 = table.vectors.double().numpy()
        self.fits = 0  # head fits so far (the audit's cost)

    def _prototypes(self, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ids = np.unique(self.table.class_ids[keep])
        sums = np.zeros((len(ids), self.vectors64.shape[1]), dtype=np.float64)
        np.add.at(sums, np.searchsorted(ids, self.table.class_ids[keep]), self.vectors64[keep])
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        source = _Prototypes(ids, (sums / np.maximum(norms, 1e-12)).astype(np.float32))
        return merged_class_prototypes(source, self.request.class_index, self.request.num_classes,
                                       self.request.unmapped)  # fmt: skip

    def _support(self, rows: np.ndarray, keep: np.ndarray) -> SupportSet:
        rows = rows[(self.labels[rows] >= 0) & (self.labels[rows] < self.request.num_classes)]
        protos, has_visual = self._prototypes(keep)
        return SupportSet(F.normalize(self.table.vectors[rows], dim=-1), torch.from_numpy(self.labels[rows]),
                          torch.from_numpy(protos), torch.from_numpy(has_visual))  # fmt: skip

    def _score(self, queries: torch.Tensor, support: SupportSet, geometry: ImageGeometry,
               truth: np.ndarray) -> float:
        result = score_queries(queries, self.request.text, support, self.config)
        grid = result.probs.reshape(*geometry.grid, -1)
        labels, _ = upsample_probabilities(grid, geometry.original, geometry=geometry,
                                           background_threshold=self.request.pixel_threshold)
        return 100.0 * photo_miou(truth, labels, self.request.num_classes)

    def photo(self, image_id: str, features: torch.Tensor, geometry: ImageGeometry,
              truth: np.ndarray) -> PhotoOutcome | None:
        """Leave-one-out of one photo (None when the rest of the memory has no row to retrieve)."""
        own_entry = np.array([image == image_id for image in self.table.image_of_entry], dtype=bool)
        keep = ~own_entry[self.table.entry_of_row] if len(own_entry) else np.zeros(0, dtype=bool)
        candidates = np.flatnonzero(keep)
        if len(candidates) == 0:
            return None
        queries = features.reshape(-1, features.shape[-1]).float().cpu()
        k = min(self.request.config.k, len(candidates))
        scores = queries @ self.table.vectors[candidates].T
        nearest = candidates[torch.topk(scores, k, dim=1).indices.numpy()]  # [q, k] global rows
        rows = np.unique(nearest)
        baseline = self._score(queries, self._support(rows, keep), geometry, truth)
        self.fits += 1
        owners = self.table.entry_of_row[nearest]  # [q, k] entry of each neighbour
        entries = np.unique(owners)
        patch_counts = {int(entry): int((owners == entry).any(axis=1).sum()) for entry in entries}
        deltas = {int(entry): baseline - self._without(self.table.entry_of_row == entry, rows, keep, queries,
                                                      geometry, truth) for entry in entries}  # fmt: skip
        # A photo's examples also as a group: the two entries of a swapped mask may each look harmless
        # alone (one partly cancels the other), but not together.
        by_photo: dict[str, list[int]] = {}
        for entry in entries:
            by_photo.setdefault(self.table.image_of_entry[entry], []).append(int(entry))
        photo_deltas = {}
        for image, members in by_photo.items():
            if len(members) == 1:
                photo_deltas[image] = deltas[members[0]]
            else:
                mine = np.isin(self.table.entry_of_row, members)
                photo_deltas[image] = baseline - self._without(mine, rows, keep, queries, geometry, truth)
        return PhotoOutcome(baseline, deltas, patch_counts, photo_deltas)

    def _without(self, mine: np.ndarray, rows: np.ndarray, keep: np.ndarray, queries: torch.Tensor,
                 geometry: ImageGeometry, truth: np.ndarray) -> float:
        """The photo's IoU with the rows `mine` marks left out of the retrieved rows and the prototypes."""
        self.fits += 1
        return self._score(queries, self._support(rows[~mine[rows]], keep & ~mine), geometry, truth)
