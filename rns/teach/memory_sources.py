"""The support images of a memory as a user sees them: the path they gave, when, and which classes.

The memory stores one entry per (image, class) under an id made of the image's content hash (see
`rns.teach.support`); users think in image files. This module maps between the two for `rns memory list
--sources` and `rns memory remove --source`, without loading any model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rns.teach.retrieval_weights import AUDIT_KEYS, AUDITED_KEY, EVIDENCE_KEY, SCORE_KEY, entry_weight
from rns.teach.support_ids import image_of_source
from support_memory import SourceInfo, SupportMemory


@dataclass(frozen=True)
class SourceRow:
    """One memory entry for display: id, image and mask as given when added, time added, classes, rows."""

    source_id: str
    image: str | None
    mask: str | None
    added: str | None
    classes: tuple[str, ...]
    prototypes: int
    audit: dict[str, str] = field(default_factory=dict)  # what `rns memory audit --apply` recorded

    def to_json(self) -> dict[str, object]:
        return {"source": self.source_id, "image": self.image, "mask": self.mask, "added": self.added,
                "classes": list(self.classes), "prototypes": self.prototypes,
                **self.audit_json()}  # fmt: skip

    def audit_json(self) -> dict[str, object]:
        """The audit's score, evidence and retrieval weight, when one was applied (else nothing)."""
        if not self.audit:
            return {}
        score = self.audit.get(SCORE_KEY)
        return {"audit": {"score": None if score is None else float(score),
                          "retrieved_by": int(self.audit.get(EVIDENCE_KEY, "0")),
                          "commit": int(self.audit.get(AUDITED_KEY, "-1")),
                          "retrieval_weight": entry_weight(self.audit)}}  # fmt: skip

    def audit_text(self) -> str:
        """E.g. "audit -4.1 on 9 photos, excluded"; empty when never audited."""
        if not self.audit:
            return ""
        score, photos = self.audit.get(SCORE_KEY), self.audit.get(EVIDENCE_KEY, "0")
        shown = "audit: not retrieved" if score is None else f"audit {float(score):+.1f} on {photos} photos"
        weight = entry_weight(self.audit)
        return shown + ("" if weight == 1 else ", excluded" if weight == 0 else f", weight {weight:g}")


def source_rows(memory: SupportMemory) -> list[SourceRow]:
    """Every entry in the order it was (last) added; entries of memories from 0.1.0 have no path or time."""
    return [
        SourceRow(info.source_id, info.meta.get("image"), info.meta.get("mask"), info.meta.get("added"),
                  info.class_names, info.n_prototypes,
                  {key: info.meta[key] for key in AUDIT_KEYS if key in info.meta})  # fmt: skip
        for info in memory.sources()
    ]


def resolve_source(memory: SupportMemory, given: str) -> list[SourceInfo]:
    """The entries `given` names: an entry id, an image's hash, an image file, or the path shown by list.

    An image (file, hash or shown path) names all its entries, one per class. Empty when nothing matches.
    """
    sources = memory.sources()
    exact = [info for info in sources if info.source_id == given]
    if exact:
        return exact
    image_ids = {given}
    path = Path(given)
    if path.is_file():
        from rns.io.imageio import image_content_hash

        image_ids.add(image_content_hash(path))
    return [info for info in sources
            if image_of_source(info.source_id) in image_ids or info.meta.get("image") == given]  # fmt: skip
