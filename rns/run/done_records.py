"""Done records: the small `<stem>.rns.json` a folder run writes last for each image, and how resume reads it.

A record holds the run's settings key (everything that changes a pixel: see `run_settings_key` and
`rns.segment.pipeline.Segmenter.settings`), the source file's size, mtime and content hash, and the size of
every output. An image is up to date only when its record matches on all of them; because the record is
written after every output, a run killed at any moment leaves each image either complete or redone next time.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path

from rns.io.atomic import atomic_write_json
from rns.io.imageio import bytes_content_hash
from rns.io.outputs import jsonable
from rns.run.inputs import InputImage
from rns.segmentation import Segmentation

DONE_SUFFIX = ".rns.json"
DONE_FORMAT = "rns.done/1"
# Bump when the bytes the writers produce for the same segmentation change, so old outputs are redone.
OUTPUT_FORMAT_VERSION = 2  # 2: the overlay legend draws non-ASCII class names


def done_record_path(out_dir: str | os.PathLike, stem: str) -> Path:
    """Where the done record of the image with this stem lives."""
    return Path(out_dir) / f"{stem}{DONE_SUFFIX}"


def run_settings_key(segmenter_key: str, *, overlay_alpha: float, background: tuple[int, int, int]) -> str:
    """The key a done record must match: the segmenter's settings plus the runner's own output options."""
    payload = json.dumps(
        {
            "segmenter": segmenter_key,
            "output_format": OUTPUT_FORMAT_VERSION,
            "overlay_alpha": overlay_alpha,
            "transparent_background": list(background),
        },
        sort_keys=True,
    )
    return hashlib.blake2b(payload.encode("utf-8"), digest_size=16).hexdigest()


def read_record(path: Path) -> dict[str, object] | None:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("format") == DONE_FORMAT else None


def outputs_complete(record: Mapping[str, object], out_dir: Path, stem: str, save: frozenset[str]) -> bool:
    outputs = record.get("outputs")
    if not isinstance(outputs, dict):
        return False
    for kind in save:
        entry = outputs.get(kind)
        if not isinstance(entry, dict):
            return False
        path = done_record_path(out_dir, stem).parent / str(entry.get("name", ""))
        try:
            if path.stat().st_size != entry.get("bytes"):
                return False
        except OSError:
            return False
    return True


def stat_source(stat: os.stat_result) -> dict[str, object]:
    return {"bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def fresh_record(
    image: InputImage, out_dir: Path, save: frozenset[str], key: str
) -> dict[str, object] | None:
    """The done record if this image's outputs are complete and up to date, else None."""
    record_path = done_record_path(out_dir, image.stem)
    record = read_record(record_path)
    if record is None or record.get("settings") != key:
        return None
    if not outputs_complete(record, out_dir, image.stem, save):
        return None
    source = record.get("source")
    if not isinstance(source, dict):
        return None
    try:
        stat = image.path.stat()
    except OSError:
        return None
    if stat.st_size != source.get("bytes"):
        return None
    if stat.st_mtime_ns == source.get("mtime_ns"):
        return record
    # Touched or copied but maybe unchanged: compare content, and remember the new mtime if equal.
    try:
        content = bytes_content_hash(image.path.read_bytes())
    except OSError:
        return None
    if content != source.get("hash"):
        return None
    record = {**record, "source": {**source, "mtime_ns": stat.st_mtime_ns}}
    with contextlib.suppress(OSError):  # only saves hashing next time; a full disk must not stop the run
        atomic_write_json(record_path, record)
    return record


def write_done_record(
    out: Path,
    image: InputImage,
    key: str,
    paths: Mapping[str, Path],
    source: Mapping[str, object],
    seg: Segmentation,
    counts: Mapping[str, int],
    seconds: Mapping[str, float],
) -> None:
    """The commit point of one image: written last, only after every output is in place."""
    record = {
        "format": DONE_FORMAT,
        "settings": key,
        "source": {"path": str(image.path), **source},
        "outputs": {kind: {"name": path.name, "bytes": path.stat().st_size} for kind, path in paths.items()},
        "class_names": list(seg.class_names),
        "pixels": dict(counts),
        "size": list(seg.size),
        "seconds": jsonable(seconds),
        "timings": jsonable(seg.timings),
    }
    atomic_write_json(done_record_path(out, image.stem), record)
