"""`Snapshot`: one committed state of a memory as a reader sees it, and `load_committed`, which reads one
from the commit log (the newest, or a given commit number).

It is its own module so that the store, the write draft, the index and the consistency check can all name
the type without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from support_memory.errors import CorruptMemoryError, DamagedMemoryError, NotAMemoryError
from support_memory.log import (
    CHECKPOINTS,
    LOG,
    MARKER,
    apply_commit,
    commit_key,
    decode_checkpoint,
    parse_checkpoint_name,
    parse_commit_name,
    read_marker,
)
from support_memory.manifest import Manifest
from support_memory.storage import Storage


@dataclass
class Snapshot:
    """A committed state: the manifest plus the per-class sums, and what the log cost to replay."""

    manifest: Manifest
    sums: np.ndarray  # float64 [next_class_id, dim]; empty when the memory has no rows yet
    log_bytes: int = 0  # bytes of commit records applied since the last checkpoint (or full record)
    checkpoint_bytes: int = 0  # size of that checkpoint
    location: str = ""  # the memory's location, for naming damage
    _live: np.ndarray | None = field(default=None, repr=False)
    _n_live: int | None = field(default=None, repr=False)

    @property
    def seq(self) -> int:
        return self.manifest.seq

    @property
    def n_live(self) -> int:
        """Live rows (computed once per snapshot: the source table can be large)."""
        if self._n_live is None:
            self._n_live = self.manifest.n_live
            if self._n_live > self.manifest.n_rows:
                self._overlap()
        return self._n_live

    def _overlap(self, distinct: int | None = None) -> None:
        claimed = self.manifest.n_live
        other = f"{distinct} distinct" if distinct is not None else f"{self.manifest.n_rows} stored"
        raise DamagedMemoryError(self.location, commit_key(self.seq), "its sources claim some rows twice "
                                 f"({claimed} rows claimed, {other})")

    def cached_live_mask(self) -> np.ndarray | None:
        """The live mask if it was computed already (writers derive the next one from it)."""
        return self._live

    def live_mask(self) -> np.ndarray:
        """Which stored rows belong to a source the manifest still lists (computed once per snapshot)."""
        if self._live is None:
            live = np.zeros(self.manifest.n_rows, dtype=bool)
            for source in self.manifest.sources.values():
                for start, stop in source.ranges:
                    live[start:stop] = True
            if int(live.sum()) != self.n_live:
                self._overlap(int(live.sum()))
            self._live = live
        return self._live


def head_seq(storage: Storage) -> int:
    """The newest commit number (0: nothing committed yet).

    Garbage collection keeps the newest record, so the log alone names the head; checkpoints are listed
    too so that a log emptied by hand (or by a tool) never makes a memory look empty.
    """
    seqs = [s for s in (parse_commit_name(n) for n in storage.list(LOG)) if s is not None]
    if seqs:
        return max(seqs)
    checkpoints = [p[0] for p in (parse_checkpoint_name(n) for n in storage.list(CHECKPOINTS)) if p]
    return max(checkpoints, default=0)


def empty_state(storage: Storage) -> Snapshot:
    """Commit 0 of the memory: no rows, no classes, its store id from the marker."""
    try:
        data = storage.read(MARKER)
    except FileNotFoundError:
        raise NotAMemoryError(f"no support memory at {storage.location}; add examples to it first") from None
    store_id = read_marker(data, f"{storage.location}/{MARKER}")
    return Snapshot(Manifest(store_id=store_id), np.zeros((0, 0)), location=storage.location)


def load_committed(storage: Storage, *, known: Snapshot | None = None, at: int | None = None) -> Snapshot:
    """The state at commit `at` (None: the newest), reusing `known` (an older state) when it helps.

    A record can vanish between listing and reading (garbage collection of old log entries): the load then
    starts again from a newer checkpoint.
    """
    last_error: FileNotFoundError | None = None
    for _ in range(20):
        target = head_seq(storage) if at is None else at
        try:
            return _load(storage, target, known)
        except FileNotFoundError as error:
            last_error = error
            known = None
    if at is not None:
        raise CorruptMemoryError(
            f"memory {storage.location} no longer keeps commit {at} ({last_error}); open the newest commit "
            "instead"
        )
    key = last_error.args[0] if last_error and last_error.args else LOG
    raise DamagedMemoryError(storage.location, str(key), f"missing, so commit {target} cannot be read")


def _load(storage: Storage, target: int, known: Snapshot | None) -> Snapshot:
    if known is not None and known.seq == target:
        return known
    newer = known is not None and known.seq < target
    if newer and known is not None:
        snapshot, checkpoint_damage = known, None
    else:
        snapshot, checkpoint_damage = _newest_checkpoint(storage, target)
    try:
        return _replay(storage, snapshot, target)
    except (FileNotFoundError, DamagedMemoryError) as error:
        # A full record (a compaction, a repair) after the break holds the whole state: start there.
        restart = _newest_full_record(storage, snapshot.seq + 1, target)
        if restart is not None:
            return _replay(storage, restart, target)
        if checkpoint_damage is not None:
            raise checkpoint_damage from None
        if isinstance(error, FileNotFoundError):
            raise FileNotFoundError(error.args[0] if error.args else LOG) from None
        raise


def _replay(storage: Storage, snapshot: Snapshot, target: int) -> Snapshot:
    """Apply the records after `snapshot` up to `target`."""
    manifest, sums = snapshot.manifest, snapshot.sums
    log_bytes, checkpoint_bytes = snapshot.log_bytes, snapshot.checkpoint_bytes
    for seq in range(manifest.seq + 1, target + 1):
        key = commit_key(seq)
        try:
            data = storage.read(key)  # FileNotFoundError: collected meanwhile, or a commit that never was
        except FileNotFoundError:
            raise FileNotFoundError(key) from None
        manifest, sums, full = apply_commit(manifest, sums, data, storage.location, key)
        if manifest.seq != seq:
            raise DamagedMemoryError(storage.location, key, f"says it is commit {manifest.seq}")
        if full:
            log_bytes, checkpoint_bytes = 0, len(data)
        else:
            log_bytes += len(data)
    return Snapshot(manifest, sums, log_bytes=log_bytes, checkpoint_bytes=checkpoint_bytes,
                    location=storage.location)  # fmt: skip


def _newest_full_record(storage: Storage, first: int, target: int) -> Snapshot | None:
    """The state of the newest readable full record in commits [first, target], if any."""
    for seq in range(target, first - 1, -1):
        key = commit_key(seq)
        try:
            data = storage.read(key)
            if b'"full":true' not in data:
                continue
            manifest, sums, full = apply_commit(Manifest(), np.zeros((0, 0)), data, storage.location, key)
        except (FileNotFoundError, DamagedMemoryError):
            continue
        if full and manifest.seq == seq:
            return Snapshot(manifest, sums, checkpoint_bytes=len(data), location=storage.location)
    return None


def _newest_checkpoint(storage: Storage, target: int) -> tuple[Snapshot, DamagedMemoryError | None]:
    """The newest readable checkpoint at or below `target` (the empty state if none), and the damage of a
    newer one that could not be read (reported if the records after the older one do not lead to target)."""
    candidates = sorted(
        (parsed[0], name)
        for name in storage.list(CHECKPOINTS)
        if (parsed := parse_checkpoint_name(name)) is not None and parsed[0] <= target
    )
    damage: DamagedMemoryError | None = None
    for _seq, name in reversed(candidates):
        key = f"{CHECKPOINTS}/{name}"
        try:
            data = storage.read(key)
            manifest, sums = decode_checkpoint(data, storage.location, key)
        except FileNotFoundError:
            continue
        except DamagedMemoryError as error:
            damage = damage or error
            continue
        state = Snapshot(manifest, sums, log_bytes=0, checkpoint_bytes=len(data), location=storage.location)
        return state, damage
    return empty_state(storage), damage
