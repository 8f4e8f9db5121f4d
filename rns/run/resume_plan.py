"""Deciding, before the model loads, that a folder rerun has nothing left to do.

A rerun whose images are all done should load nothing: the model and its text features take 10-25 s on a
CPU. But the resume key of the done records comes from the built segmenter (its weights, the classes'
prompts, the memory it read), so it cannot be computed without building one. Instead every local run
records in `summary.json` a *request fingerprint*: a hash of everything the user asked that decides that
key (the class list, every segmentation option, the model, weights and variant names with the files they
name, the device asked for on this host, the memory's content and the rns version), next to the segmenter
key the run had. A later run with the same request fingerprint knows the key without building anything;
when every input's done record is fresh under it (`rns.run.done_records.fresh_record`, the same check the
runner makes), the run goes ahead with `RecordedSettings`, a stand-in that is never asked to segment.
Anything unknown (no summary, another request, one image not done) means: build the model as usual.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path

from rns.io.imageio import TRANSPARENT_BACKGROUND
from rns.io.outputs import DEFAULT_OVERLAY_ALPHA
from rns.run.done_records import fresh_record, run_settings_key
from rns.run.inputs import InputImage

SUMMARY_NAME = "summary.json"
_SETTING_VARIABLES = ("RNS_MODEL", "RNS_PRETRAINED", "RNS_CHECKPOINT", "RNS_VARIANT", "RNS_SAM_CHECKPOINT",
                      "RNS_MEMORY", "CUDA_VISIBLE_DEVICES")


def request_fingerprint(asked: Mapping[str, object], files: Sequence[str | None], memory: str | None) -> str:
    """A hash of the request: `asked` (option values as given), the named `files` (by size and mtime),
    `memory` (its content identity, or None when none is used), the variables that pick settings, the
    host (for `--device auto`) and the rns version."""
    from rns import __version__

    named = [os.environ.get("RNS_CHECKPOINT"), os.environ.get("RNS_SAM_CHECKPOINT"), *files]
    payload = {
        "rns": __version__,
        "asked": dict(asked),
        "variables": {name: os.environ.get(name) for name in _SETTING_VARIABLES},
        "files": {str(path): _file_identity(Path(path)) for path in named if path},
        "memory": memory,
        "host": socket.gethostname(),
    }
    blob = json.dumps(payload, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:32]


def memory_identity(location: str | os.PathLike, zero_shot: bool) -> str | None:
    """The memory's content identity as a run would see it; None when the run uses no memory."""
    if zero_shot:
        return None
    from support_memory import SupportMemory

    if not SupportMemory.exists(location):
        return None
    memory = SupportMemory.open(location, create=False)
    try:
        return memory.content_id()
    finally:
        memory.close()


def _file_identity(path: Path) -> list[int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return [stat.st_size, stat.st_mtime_ns]


class RecordedSettings:
    """Stands for the segmenter of an earlier run with the same request when every image is done."""

    def __init__(self, segmenter_key: str, class_names: list[str]) -> None:
        self._key = segmenter_key
        self.class_names = class_names

    def settings_key(self) -> str:
        return self._key

    def segment(self, image: object) -> object:
        raise AssertionError("RecordedSettings is used only when every image is done")


def nothing_to_do(images: Sequence[InputImage], out_dir: str | os.PathLike, save: frozenset[str],
                  request: str) -> RecordedSettings | None:
    """The stand-in segmenter when an earlier run made this request and every image is still done."""
    try:
        summary = json.loads((Path(out_dir) / SUMMARY_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    recorded = summary.get("request") if isinstance(summary, dict) else None
    if not isinstance(recorded, dict) or recorded.get("fingerprint") != request or not images:
        return None
    segmenter_key = str(recorded.get("segmenter"))
    key = run_settings_key(segmenter_key, overlay_alpha=DEFAULT_OVERLAY_ALPHA,
                           background=TRANSPARENT_BACKGROUND)
    class_names: list[str] = []
    for image in images:
        record = fresh_record(image, Path(out_dir), save, key)
        if record is None:
            return None
        class_names = [str(name) for name in record.get("class_names") or []]
    return RecordedSettings(segmenter_key, class_names)
