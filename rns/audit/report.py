"""What an audit found: per entry a helpfulness score with its evidence, the entries that hurt, and why.

An entry's score is the mean, over the other support photos that retrieve it, of the change in the photo's
mean IoU (points, 0-100) when the entry is left out, signed so that positive means it helps. An entry is
flagged as hurting when its score is at most `-threshold` points on at least `min_evidence` photos: one
photo's change is too noisy to act on. A photo's examples are also scored together (a swapped mask makes
two entries wrong at once, and each may look harmless alone); a photo that hurts flags all its entries.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_THRESHOLD = 0.5
"""Points of mean IoU an entry must cost the photos that retrieve it, on average, to be flagged. Chosen on
CamVid val with EfficientNet-Lite0 (benchmarks/audit.py, docs/RESULTS.md): leaving one entry out of ~100
retrieved moves a photo's mean IoU by well under a point, and at 0.5 --apply helped val on both seeds."""
DEFAULT_MIN_EVIDENCE = 2
"""Photos that must retrieve an entry before it can be flagged."""


def _least_helpful(scored: _Scored) -> tuple[bool, float]:
    """Sort key: least helpful first, never-retrieved last."""
    return scored.score is None, scored.score or 0.0


class _Scored:
    """IoU changes measured on the photos that retrieved something (`deltas`, points, + = it helps)."""

    deltas: list[float]

    @property
    def retrieved_by(self) -> int:
        return len(self.deltas)

    @property
    def score(self) -> float | None:
        """Mean IoU change in points (positive: it helps), None when no other photo retrieved it."""
        return sum(self.deltas) / len(self.deltas) if self.deltas else None

    def hurts(self, threshold: float, min_evidence: int) -> bool:
        score = self.score
        return score is not None and self.retrieved_by >= min_evidence and score <= -threshold


@dataclass
class EntryScore(_Scored):
    """One entry (an image's example of one class) and what leaving it out did."""

    source_id: str
    class_name: str
    image: str  # the path the photo was added from
    mask: str
    content_key: str = ""  # what the entry was made from: an apply skips entries replaced since
    deltas: list[float] = field(default_factory=list)  # per retrieving photo: IoU with it minus without
    patches: int = 0  # queries of those photos that had it among their k nearest rows

    def reason(self) -> str:
        """One line a person can act on."""
        name = Path(self.image).name
        score = self.score or 0.0
        verb = "lowers" if score < 0 else "raises"
        count = self.retrieved_by
        photos = "photo that retrieves" if count == 1 else f"{count} photos that retrieve"
        return (f"class `{self.class_name}` from {name} {verb} the mean IoU of the {photos} it by "
                f"{abs(score):.1f} points: is its mask right ({Path(self.mask).name})?")  # fmt: skip

    def to_json(self) -> dict[str, object]:
        return {"source": self.source_id, "class": self.class_name, "image": self.image, "mask": self.mask,
                "score": None if self.score is None else round(self.score, 3),
                "retrieved_by": self.retrieved_by, "patches": self.patches,
                "deltas": [round(d, 3) for d in self.deltas]}  # fmt: skip


@dataclass
class PhotoScore(_Scored):
    """One support photo's examples left out together (a swapped mask makes two entries wrong at once)."""

    image_id: str
    image: str
    source_ids: list[str]
    class_names: list[str]
    deltas: list[float] = field(default_factory=list)

    def reason(self) -> str:
        score = self.score or 0.0
        count = self.retrieved_by
        photos = "photo that retrieves" if count == 1 else f"{count} photos that retrieve"
        return (f"the examples from {Path(self.image).name} ({', '.join(self.class_names)}) together "
                f"{'lower' if score < 0 else 'raise'} the mean IoU of the {photos} them by {abs(score):.1f} "
                "points: are its masks right?")  # fmt: skip

    def to_json(self) -> dict[str, object]:
        return {"image": self.image, "classes": self.class_names, "entries": self.source_ids,
                "score": None if self.score is None else round(self.score, 3),
                "retrieved_by": self.retrieved_by, "deltas": [round(d, 3) for d in self.deltas]}  # fmt: skip


@dataclass
class AuditReport:
    """The whole audit: every entry's score, what was skipped, timings, and the flagging rule used."""

    memory: str
    commit: int
    entries: list[EntryScore]
    photos_audited: int
    photo_baselines: dict[str, float]  # photo path -> its leave-one-out mean IoU (points)
    skipped: Counter[str]
    skipped_photos: int
    seconds: float
    head_fits: int
    photos: list[PhotoScore] = field(default_factory=list)
    threshold: float = DEFAULT_THRESHOLD
    min_evidence: int = DEFAULT_MIN_EVIDENCE
    whole_photos: bool = True  # also flag every entry of a photo whose examples hurt together

    def hurting(self) -> list[EntryScore]:
        """Flagged entries, worst first."""
        flagged = [e for e in self.entries if e.hurts(self.threshold, self.min_evidence)]
        return sorted(flagged, key=lambda e: (e.score or 0.0, -e.retrieved_by))

    def hurting_photos(self) -> list[PhotoScore]:
        """Photos whose examples, left out together, raise the IoU of those retrieving them; worst first."""
        if not self.whole_photos:
            return []
        flagged = [p for p in self.photos
                   if len(p.source_ids) > 1 and p.hurts(self.threshold, self.min_evidence)]  # fmt: skip
        return sorted(flagged, key=lambda p: (p.score or 0.0, -p.retrieved_by))

    def flagged_sources(self) -> set[str]:
        """What `--apply` demotes: the hurting entries and every entry of a hurting photo."""
        photos = {source_id for photo in self.hurting_photos() for source_id in photo.source_ids}
        return {entry.source_id for entry in self.hurting()} | photos

    def ranked(self) -> list[EntryScore]:
        """Every entry, least helpful first; entries no photo retrieved last."""
        return sorted(self.entries, key=_least_helpful)

    @property
    def seconds_per_photo(self) -> float:
        return self.seconds / self.photos_audited if self.photos_audited else 0.0

    def to_json(self) -> dict[str, object]:
        return {
            "memory": self.memory, "commit": self.commit,
            "photos_audited": self.photos_audited, "photos_skipped": self.skipped_photos,
            "entries_skipped": dict(self.skipped),
            "seconds": round(self.seconds, 2), "seconds_per_photo": round(self.seconds_per_photo, 3),
            "head_fits": self.head_fits,
            "rule": {"threshold_points": self.threshold, "min_evidence": self.min_evidence},
            "photo_miou": {k: round(v, 2) for k, v in self.photo_baselines.items()},
            "hurting": [dict(e.to_json(), reason=e.reason()) for e in self.hurting()],
            "hurting_photos": [dict(p.to_json(), reason=p.reason()) for p in self.hurting_photos()],
            "photos": [p.to_json() for p in sorted(self.photos, key=_least_helpful)],
            "entries": [e.to_json() for e in self.ranked()],
        }  # fmt: skip

    def table(self, limit: int | None = 20) -> str:
        """The entries as a text table, least helpful first, then the hurting ones with their reasons."""
        header = ("score", "photos", "class", "image")
        rows = [header] + [
            ("-" if e.score is None else f"{e.score:+.1f}", str(e.retrieved_by), e.class_name,
             Path(e.image).name) for e in self.ranked()[:limit]  # fmt: skip
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        lines = ["  ".join(cell.rjust(widths[i]) if i < 2 else cell.ljust(widths[i])
                           for i, cell in enumerate(row)).rstrip() for row in rows]  # fmt: skip
        if limit is not None and len(self.entries) > limit:
            lines.append(f"... {len(self.entries) - limit} more entries (--json lists all)")
        lines.append("")
        hurting = self.hurting()
        lines.append(f"{len(hurting)} entr{'y hurts' if len(hurting) == 1 else 'ies hurt'} "
                     f"(score <= -{self.threshold:g} points on >= {self.min_evidence} photos):")  # fmt: skip
        lines += [f"  {e.reason()}" for e in hurting] or ["  none"]
        photos = self.hurting_photos()
        if photos:
            lines.append(f"{len(photos)} photo{'' if len(photos) == 1 else 's'} hurt as a whole:")
            lines += [f"  {p.reason()}" for p in photos]
        skipped = sum(self.skipped.values())
        lines.append(f"audited {self.photos_audited} photos in {self.seconds:.1f} s "
                     f"({self.seconds_per_photo:.2f} s per photo, {self.head_fits} head fits)")  # fmt: skip
        if skipped:
            reasons = "; ".join(f"{n} {why}" for why, n in self.skipped.most_common())
            lines.append(f"skipped {skipped} entries ({self.skipped_photos} photos gone): {reasons}")
        return "\n".join(lines)

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, ensure_ascii=False)
