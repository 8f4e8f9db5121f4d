"""The manifest: a committed state of a memory, as the commit log (log.py) rebuilds it.

Everything a reader needs to interpret the rows is here: the immutable row segments in row order, which
row ranges belong to which source (rows outside every range are dead, left by removals until a compaction
rewrites them), the class table with per-class counts, and the fingerprint of the features. Row numbers run
across the segments in order; `generation` counts compactions, the only operation that renumbers rows (an
approximate index built for one generation is invalid in another).

A state is never edited in place once committed: `clone()` copies the tables shallowly and a write replaces
the records it changes, so a write costs the size of the change, not of the memory, and the commit record
is the difference between two states (`log.py`).
"""

from __future__ import annotations

import copy
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from support_memory.errors import CorruptMemoryError

FORMAT = "support_memory/2"


def name_key(name: str) -> str:
    """Class names compare case-insensitively and ignoring extra spaces ("Car " is "car")."""
    return " ".join(name.split()).casefold()


@dataclass
class ClassRecord:
    """One class: a stable id (never reused), its name, its text prompt (None: no usable name), row count."""

    id: int
    name: str
    text: str | None
    count: int


@dataclass
class SourceRecord:
    """One source (e.g. a support image) and the committed row ranges that hold its prototypes.

    `pruned` marks a source that lost rows to `remove_class`: putting it again must replace it even when
    its content key is unchanged, or the removed class would never come back. `rows_digest` hashes the
    source's rows (see identity.py; None in memories written before it existed). `meta` is whatever small
    text the caller wants shown with the source (where it came from, when it was added).
    """

    source_id: str
    num: int
    content_key: str
    ranges: list[tuple[int, int]]
    class_names: list[str]
    pruned: bool = False
    rows_digest: str | None = None
    meta: dict[str, str] = field(default_factory=dict)

    @property
    def n_rows(self) -> int:
        return sum(stop - start for start, stop in self.ranges)


@dataclass(frozen=True)
class SegmentRecord:
    """One immutable segment of rows: its folder under `segments/`, its first row number and its length."""

    name: str
    start: int
    n_rows: int

    @property
    def stop(self) -> int:
        return self.start + self.n_rows


@dataclass
class Manifest:
    """A committed state of a memory (see the module docstring)."""

    store_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    seq: int = 0
    generation: int = 1
    dim: int | None = None
    fingerprint: dict[str, Any] | None = None
    next_class_id: int = 0
    next_source_num: int = 0
    segments: list[SegmentRecord] = field(default_factory=list)
    classes: dict[int, ClassRecord] = field(default_factory=dict)
    sources: dict[str, SourceRecord] = field(default_factory=dict)

    @property
    def n_rows(self) -> int:
        """Rows stored in the segments, live or dead."""
        return self.segments[-1].stop if self.segments else 0

    @property
    def n_live(self) -> int:
        return sum(record.n_rows for record in self.sources.values())

    def class_by_name(self, name: str) -> ClassRecord | None:
        """The class called `name`, compared without case or extra spaces ("Car" finds "car")."""
        wanted = name_key(name)
        for record in self.classes.values():
            if name_key(record.name) == wanted:
                return record
        return None

    def clone(self) -> Manifest:
        """A copy to edit: the source table is copied shallowly (a write replaces, never edits, records)."""
        return Manifest(
            store_id=self.store_id,
            seq=self.seq,
            generation=self.generation,
            dim=self.dim,
            fingerprint=self.fingerprint,
            next_class_id=self.next_class_id,
            next_source_num=self.next_source_num,
            segments=list(self.segments),
            classes={k: copy.copy(v) for k, v in self.classes.items()},
            sources=dict(self.sources),
        )

    def header_json(self) -> dict[str, Any]:
        """Everything but the source table (small: written with every commit)."""
        return {
            "store_id": self.store_id,
            "seq": self.seq,
            "generation": self.generation,
            "dim": self.dim,
            "fingerprint": self.fingerprint,
            "next_class_id": self.next_class_id,
            "next_source_num": self.next_source_num,
            "segments": [[s.name, s.start, s.n_rows] for s in self.segments],
            "classes": [
                {"id": c.id, "name": c.name, "text": c.text, "count": c.count}
                for c in sorted(self.classes.values(), key=lambda c: c.id)
            ],
        }

    def to_json(self) -> dict[str, Any]:
        """The whole state (a checkpoint)."""
        payload = {"format": FORMAT, **self.header_json()}
        payload["sources"] = [source_to_json(s) for s in sorted(self.sources.values(), key=lambda s: s.num)]
        return payload

    @classmethod
    def from_header(cls, payload: dict[str, Any], sources: dict[str, SourceRecord], where: str) -> Manifest:
        """A state from `header_json()` output and a source table; damage is a CorruptMemoryError."""
        try:
            return cls(
                store_id=str(payload["store_id"]),
                seq=int(payload["seq"]),
                generation=int(payload["generation"]),
                dim=None if payload["dim"] is None else int(payload["dim"]),
                fingerprint=payload["fingerprint"],
                next_class_id=int(payload["next_class_id"]),
                next_source_num=int(payload["next_source_num"]),
                segments=[SegmentRecord(str(n), int(a), int(m)) for n, a, m in payload["segments"]],
                classes={
                    int(c["id"]): ClassRecord(int(c["id"]), str(c["name"]), c["text"], int(c["count"]))
                    for c in payload["classes"]
                },
                sources=sources,
            )
        except (KeyError, TypeError, ValueError) as error:
            raise damaged(where, error) from None

    @classmethod
    def from_json(cls, payload: dict[str, Any], where: str) -> Manifest:
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise CorruptMemoryError(
                f"{where} is not a support-memory state of format {FORMAT}; use a memory made by this version"
            )
        try:
            sources = {str(s["source_id"]): source_from_json(s) for s in payload["sources"]}
        except (KeyError, TypeError, ValueError) as error:
            raise damaged(where, error) from None
        return cls.from_header(payload, sources, where)


def damaged(where: str, error: Exception) -> CorruptMemoryError:
    return CorruptMemoryError(
        f"{where} is damaged ({type(error).__name__}: {error}); restore the memory from a backup or "
        "rebuild it"
    )


def source_to_json(s: SourceRecord) -> dict[str, Any]:
    return {
        "source_id": s.source_id,
        "num": s.num,
        "content_key": s.content_key,
        "ranges": [list(r) for r in s.ranges],
        "class_names": s.class_names,
        "pruned": s.pruned,
        "rows_digest": s.rows_digest,
        "meta": s.meta,
    }


def source_from_json(s: dict[str, Any]) -> SourceRecord:
    """One source record (KeyError/TypeError/ValueError on damage: the caller names the file)."""
    return SourceRecord(
        source_id=str(s["source_id"]),
        num=int(s["num"]),
        content_key=str(s["content_key"]),
        ranges=[(int(a), int(b)) for a, b in s["ranges"]],
        class_names=[str(n) for n in s["class_names"]],
        pruned=bool(s.get("pruned", False)),
        rows_digest=None if s.get("rows_digest") is None else str(s["rows_digest"]),
        meta={str(k): str(v) for k, v in (s.get("meta") or {}).items()},
    )


def normalise_fingerprint(fingerprint: dict[str, Any]) -> dict[str, Any]:
    """The fingerprint as it reads back from JSON, so comparisons do not depend on tuples vs lists."""
    return json.loads(json.dumps(fingerprint, sort_keys=True))


def fingerprint_differences(stored: dict[str, Any], offered: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two fingerprints, with both values, for error messages."""
    differences = []
    for key in sorted(set(stored) | set(offered)):
        name = f"{prefix}{key}"
        a, b = stored.get(key, "<missing>"), offered.get(key, "<missing>")
        if isinstance(a, dict) and isinstance(b, dict):
            differences.extend(fingerprint_differences(a, b, prefix=f"{name}."))
        elif a != b:
            differences.append(f"{name}: memory has {a!r}, offered {b!r}")
    return differences
