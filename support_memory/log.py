"""The commit log: how committed states are written and read back, as small immutable objects.

    memory.json                        the marker: format and store id, created once
    log/c000000000042.json             commit 42: what changed since commit 41 (created only if absent)
    checkpoints/c000000000040.<t>.json the whole state as of commit 40, written at time t (any writer)

Commit n+1 exists once one writer has created `log/c<n+1>.json`; a second writer trying the same name is
refused by the storage (`Storage.create`), re-reads the log and tries n+2. A record holds the header (the
segments, the class table, counters: small), the changed per-class sums and the sources put or removed, so
its size is that of the change, not of the memory. A reader starts from the newest checkpoint at or below
the commit it wants and applies the records after it. Writers add a checkpoint when the records since the
last one outweigh it, which keeps both the bytes written per commit and the replay on open proportional to
the change (amortised).
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np

from support_memory.errors import CorruptMemoryError, DamagedMemoryError
from support_memory.manifest import (
    FORMAT,
    Manifest,
    SourceRecord,
    damaged,
    source_from_json,
    source_to_json,
)
from support_memory.record_checks import check_header, check_sources, check_sums

MARKER = "memory.json"
LOG = "log"
CHECKPOINTS = "checkpoints"
RECORD_FORMAT = "support_memory/2 commit"
# A checkpoint is written once the records since the last one weigh more than it, or at least this much.
MIN_CHECKPOINT_GAP_BYTES = 256 * 1024


def commit_key(seq: int) -> str:
    return f"{LOG}/c{seq:012d}.json"


def checkpoint_key(seq: int, written: float) -> str:
    return f"{CHECKPOINTS}/c{seq:012d}.{int(written)}.json"


def parse_commit_name(name: str) -> int | None:
    """The commit number of a log object's name (None for anything else, e.g. a stray temp file)."""
    if name.startswith("c") and name.endswith(".json") and name[1:-5].isdigit():
        return int(name[1:-5])
    return None


def parse_checkpoint_name(name: str) -> tuple[int, int] | None:
    """(commit number, unix time written) of a checkpoint's name, or None."""
    parts = name.split(".")
    if len(parts) == 3 and parts[0][:1] == "c" and parts[0][1:].isdigit() and parts[1].isdigit():
        return int(parts[0][1:]), int(parts[1])
    return None


def marker_payload(store_id: str) -> bytes:
    return json.dumps({"format": FORMAT, "store_id": store_id, "created": time.time()}).encode()


def read_marker(data: bytes, where: str) -> str:
    """The store id in a marker; anything else is a CorruptMemoryError."""
    try:
        payload = json.loads(data)
        if payload.get("format") != FORMAT:
            raise CorruptMemoryError(
                f"{where} is a support memory of format {payload.get('format')!r}, not {FORMAT}; rebuild it "
                "with this version (add the examples again into a new memory)"
            )
        return str(payload["store_id"])
    except (ValueError, KeyError, AttributeError, TypeError) as error:
        raise damaged(where, error) from None


def _encode_sums(ids: list[int], sums: np.ndarray) -> dict[str, Any]:
    rows = np.ascontiguousarray(sums[ids], dtype="<f8") if ids else np.zeros((0, sums.shape[1]), "<f8")
    return {"ids": ids, "data": base64.b64encode(rows.tobytes()).decode("ascii")}


def _decode_sums(payload: dict[str, Any], dim: int) -> tuple[list[int], np.ndarray]:
    ids = [int(i) for i in payload["ids"]]
    rows = np.frombuffer(base64.b64decode(payload["data"]), dtype="<f8").reshape(len(ids), dim)
    return ids, rows.astype(np.float64)


def changed_sum_rows(before: np.ndarray, after: np.ndarray) -> list[int]:
    """Class ids whose sums row differs (new class ids included)."""
    if before.shape[1] != after.shape[1]:
        return list(range(after.shape[0]))
    n = min(before.shape[0], after.shape[0])
    differ = np.flatnonzero(np.any(before[:n] != after[:n], axis=1)).tolist()
    return differ + list(range(n, after.shape[0]))


def encode_commit(
    base: Manifest, base_sums: np.ndarray, manifest: Manifest, sums: np.ndarray, *, full: bool,
    retired: list[str], touched: set[str],
) -> bytes:  # fmt: skip
    """The record of commit `manifest.seq`: the whole state when `full` (rows renumbered), else the change
    to the sources in `touched` (so that a commit costs its change, not a walk over the whole table)."""
    payload: dict[str, Any] = {"format": RECORD_FORMAT, "time": time.time(), "nonce": uuid.uuid4().hex}
    payload.update(manifest.header_json())
    payload["retired"] = retired
    if full:
        payload["full"] = True
        ordered = sorted(manifest.sources.values(), key=lambda s: s.num)
        payload["sources"] = [source_to_json(s) for s in ordered]
        payload["sums"] = _encode_sums(list(range(sums.shape[0])), sums)
    else:
        old, new = base.sources, manifest.sources
        ids = sorted(touched)
        payload["put"] = [source_to_json(new[i]) for i in ids if i in new and old.get(i) is not new[i]]
        payload["removed"] = [i for i in ids if i in old and i not in new]
        payload["sums"] = _encode_sums(changed_sum_rows(base_sums, sums), sums)
    return json.dumps(payload, separators=(",", ":")).encode("utf-8")


@dataclass
class Record:
    """A commit record as read: its header (with only the sources it puts), what it removes, its sums."""

    header: Manifest
    put: list[SourceRecord]
    removed: list[str]
    full: bool
    sum_ids: list[int]
    sum_rows: np.ndarray


def read_record(data: bytes, location: str, key: str) -> Record:
    """A record, checked on its own (record_checks.py); damage is a DamagedMemoryError naming it."""
    try:
        payload = json.loads(data)
        if payload.get("format") != RECORD_FORMAT:
            raise ValueError(f"format {payload.get('format')!r}")
        full = bool(payload.get("full", False))
        put = [source_from_json(s) for s in payload["sources" if full else "put"]]
        removed = [] if full else [str(source_id) for source_id in payload["removed"]]
        header = Manifest.from_header(payload, {s.source_id: s for s in put}, f"{location}/{key}")
        check_header(header, location, key)
        check_sources(header, put, location, key)
        ids, rows = _decode_sums(payload["sums"], header.dim or 0)
        check_sums(header, ids, rows, location, key)
        return Record(header, put, removed, full, ids, rows)
    except (CorruptMemoryError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise _as_damage(error, location, key) from None


def salvage_puts(data: bytes) -> list[SourceRecord]:
    """The source records a damaged record still holds in readable form (repair verifies their rows)."""
    try:
        payload = json.loads(data)
        entries = payload.get("sources") or payload.get("put") or []
    except (ValueError, AttributeError):
        return []
    found = []
    for entry in entries if isinstance(entries, list) else []:
        try:
            found.append(source_from_json(entry))
        except (KeyError, TypeError, ValueError, AttributeError):
            continue
    return found


def apply_commit(
    manifest: Manifest, sums: np.ndarray, data: bytes, location: str, key: str
) -> tuple[Manifest, np.ndarray, bool]:
    """The state after a record; also whether it was a full record. Damage (unreadable, or a state no
    writer could have made: see record_checks.py) is a DamagedMemoryError naming the record."""
    record = read_record(data, location, key)
    new = record.header
    if not record.full:
        sources = dict(manifest.sources)
        for source_id in record.removed:
            sources.pop(source_id, None)
        sources.update(new.sources)
        new.sources = sources
    dim = new.dim or 0
    grown = np.zeros((new.next_class_id, dim), dtype=np.float64)
    if not record.full and sums.size and sums.shape[1] == dim:
        n = min(sums.shape[0], new.next_class_id)
        grown[:n] = sums[:n]
    if record.sum_ids:
        grown[record.sum_ids] = record.sum_rows
    return new, grown, record.full


def encode_checkpoint(manifest: Manifest, sums: np.ndarray) -> bytes:
    payload = manifest.to_json()
    payload["sums"] = _encode_sums(list(range(sums.shape[0])), sums)
    return json.dumps(payload, separators=(",", ":")).encode("utf-8")


def decode_checkpoint(data: bytes, location: str, key: str) -> tuple[Manifest, np.ndarray]:
    """A checkpoint's state, checked like a full record (see record_checks.py)."""
    try:
        payload = json.loads(data)
        manifest = Manifest.from_json(payload, f"{location}/{key}")
        check_header(manifest, location, key)
        check_sources(manifest, manifest.sources.values(), location, key)
        ids, rows = _decode_sums(payload["sums"], manifest.dim or 0)
        check_sums(manifest, ids, rows, location, key)
    except (CorruptMemoryError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise _as_damage(error, location, key) from None
    sums = np.zeros((manifest.next_class_id, manifest.dim or 0), dtype=np.float64)
    if ids:
        sums[ids] = rows
    return manifest, sums


def _as_damage(error: Exception, location: str, key: str) -> DamagedMemoryError:
    """Any failure to read a record or checkpoint as the one-line error naming it."""
    if isinstance(error, DamagedMemoryError):
        return error
    if isinstance(error, CorruptMemoryError):  # the manifest's own refusals say what they found
        return DamagedMemoryError(location, key, str(error).split(";")[0].replace(f"{location}/{key} ", ""))
    return DamagedMemoryError(location, key, f"unreadable ({type(error).__name__}: {error})")
