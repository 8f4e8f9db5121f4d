"""The manifest: the small JSON file that is the memory's only commit point.

Everything a reader needs to interpret the arrays is here: which generation of row arrays is current, how
many of its rows are committed, which row ranges belong to which source (rows outside every range are dead,
left by removals until a compaction rewrites the arrays), the class table with per-class counts, the name of
the per-class sums array, and the fingerprint of the features. Rows past `n_rows` may exist on disk (a writer
died before committing them); they are invisible and get overwritten by the next append.
"""

from __future__ import annotations

import copy
import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from support_memory.errors import CorruptMemoryError

MANIFEST_NAME = "manifest.json"
FORMAT = "support_memory/1"


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


@dataclass
class Manifest:
    """The committed state of a memory (see the module docstring)."""

    store_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    seq: int = 0
    generation: int = 1
    n_rows: int = 0
    dim: int | None = None
    fingerprint: dict[str, Any] | None = None
    next_class_id: int = 0
    next_source_num: int = 0
    sums_name: str | None = None
    classes: dict[int, ClassRecord] = field(default_factory=dict)
    sources: dict[str, SourceRecord] = field(default_factory=dict)

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
        return copy.deepcopy(self)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "store_id": self.store_id,
            "seq": self.seq,
            "generation": self.generation,
            "n_rows": self.n_rows,
            "dim": self.dim,
            "fingerprint": self.fingerprint,
            "next_class_id": self.next_class_id,
            "next_source_num": self.next_source_num,
            "sums_name": self.sums_name,
            "classes": [
                {"id": c.id, "name": c.name, "text": c.text, "count": c.count}
                for c in sorted(self.classes.values(), key=lambda c: c.id)
            ],
            "sources": [
                {
                    "source_id": s.source_id,
                    "num": s.num,
                    "content_key": s.content_key,
                    "ranges": [list(r) for r in s.ranges],
                    "class_names": s.class_names,
                    "pruned": s.pruned,
                    "rows_digest": s.rows_digest,
                    "meta": s.meta,
                }
                for s in sorted(self.sources.values(), key=lambda s: s.num)
            ],
        }

    @classmethod
    def from_json(cls, payload: dict[str, Any], where: Path) -> Manifest:
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise CorruptMemoryError(
                f"{where} is not a support-memory manifest of format {FORMAT}; use a memory "
                "directory made by this version"
            )
        try:
            classes = {
                int(c["id"]): ClassRecord(int(c["id"]), str(c["name"]), c["text"], int(c["count"]))
                for c in payload["classes"]
            }
            sources = {
                str(s["source_id"]): SourceRecord(
                    source_id=str(s["source_id"]),
                    num=int(s["num"]),
                    content_key=str(s["content_key"]),
                    ranges=[(int(a), int(b)) for a, b in s["ranges"]],
                    class_names=[str(n) for n in s["class_names"]],
                    pruned=bool(s.get("pruned", False)),
                    rows_digest=None if s.get("rows_digest") is None else str(s["rows_digest"]),
                    meta={str(k): str(v) for k, v in (s.get("meta") or {}).items()},
                )
                for s in payload["sources"]
            }
            return cls(
                store_id=str(payload["store_id"]),
                seq=int(payload["seq"]),
                generation=int(payload["generation"]),
                n_rows=int(payload["n_rows"]),
                dim=None if payload["dim"] is None else int(payload["dim"]),
                fingerprint=payload["fingerprint"],
                next_class_id=int(payload["next_class_id"]),
                next_source_num=int(payload["next_source_num"]),
                sums_name=payload["sums_name"],
                classes=classes,
                sources=sources,
            )
        except (KeyError, TypeError, ValueError) as error:
            raise CorruptMemoryError(
                f"manifest {where} is damaged ({type(error).__name__}: {error}); restore the memory from a "
                "backup or rebuild it with add-support"
            ) from None


def read_manifest(path: Path) -> Manifest:
    """Parse the committed manifest; a damaged file is a CorruptMemoryError, not a traceback."""
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise CorruptMemoryError(
            f"manifest {path} is not valid JSON ({error}); restore the memory from a backup or rebuild it"
        ) from None
    return Manifest.from_json(payload, path)


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
