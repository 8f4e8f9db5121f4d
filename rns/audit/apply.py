"""`rns memory audit --apply`: record the audit's scores in the memory and demote the entries that hurt.

One atomic commit writes, for every scored entry, its score, its evidence and the commit audited, and for
the flagged entries a retrieval weight (`weight`: 0 excludes them from retrieval, a value in (0, 1)
demotes them; see `rns.teach.retrieval_weights`). Entries not flagged get no weight, and a weight left by an
earlier apply on an entry that no longer hurts is removed, so the stored weights always say what the
latest applied audit found. Nothing is deleted: `rns memory remove` stays the way to delete an entry.
"""

from __future__ import annotations

from typing import Any

from rns.audit.report import AuditReport
from rns.errors import InputError
from rns.teach.retrieval_weights import AUDITED_KEY, EVIDENCE_KEY, SCORE_KEY, WEIGHT_KEY


def apply_audit(memory: Any, report: AuditReport, *, weight: float = 0.0) -> int:
    """Write the scores and the weights of the hurting entries as one commit; returns how many were
    demoted. Entries removed or replaced since the audit are left alone (their scores no longer apply)."""
    if not 0.0 <= weight < 1.0:
        raise InputError(f"--weight {weight:g}: give a weight in [0, 1) (0 excludes the entries that hurt)")
    memory.check_writable()
    memory.refresh()
    current = {info.source_id: info for info in memory.sources()}
    flagged = report.flagged_sources()
    updates: dict[str, dict[str, str | None]] = {}
    for entry in report.entries:
        info = current.get(entry.source_id)
        if info is None or info.content_key != entry.content_key:
            continue
        score = entry.score
        updates[entry.source_id] = {
            SCORE_KEY: None if score is None else f"{score:.3f}",
            EVIDENCE_KEY: str(entry.retrieved_by),
            AUDITED_KEY: str(report.commit),
            WEIGHT_KEY: f"{weight:g}" if entry.source_id in flagged else None,
        }
    memory.update_meta(updates)
    return sum(1 for source_id in updates if source_id in flagged)
