"""`audit_memory`: leave-one-out over a memory's support photos, everything `rns memory audit` does but
parsing and printing.

The photos are read from where they were added (see `truth.py`); each photo's test-time features are
computed once per run (and kept in `feature_cache` when a caller audits several memories of the same
photos). The audit segments with every class of the memory, as `rns segment PHOTO` with no --classes
does, with the given `SegmentOptions` (background on by default; `regions` must be "none"). Stored
retrieval weights are ignored: the audit judges the entries themselves, so running it again after
`--apply` gives the same scores.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch

from rns.audit.loo import LeaveOneOut, PhotoRequest, RowTable
from rns.audit.report import DEFAULT_MIN_EVIDENCE, DEFAULT_THRESHOLD, AuditReport, EntryScore, PhotoScore
from rns.audit.truth import find_photos, load_truth
from rns.errors import InputError
from rns.segment.class_plan import memory_class_index
from rns.segment.pipeline import Segmenter, SegmentOptions

AUDIT_SOLVER = "fast"
"""The head fit the audit uses by default (see `audit_memory`)."""

Progress = Callable[[int, int], None]
"""`progress(photos done, photos to audit)`."""


def audit_memory(
    memory: Any,
    backbone: Any,
    *,
    options: SegmentOptions | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    min_evidence: int = DEFAULT_MIN_EVIDENCE,
    feature_cache: dict[str, torch.Tensor] | None = None,
    progress: Progress | None = None,
    solver: str = AUDIT_SOLVER,
) -> AuditReport:
    """Score every entry of `memory` by leave-one-out over its support photos (see the package docs).

    `solver` fits the audit's heads: "fast" (default; 70 steps, about 10x cheaper than the reference's
    700 AdamW steps, whose labels it matches on 98-99 % of patches) or "adamw" (what segmenting uses).
    The audit compares fits with each other, so one solver for all of them is what matters.
    """
    options = options or SegmentOptions()
    if options.regions != "none" or options.zero_shot:
        raise InputError("the audit segments patches with the memory: it takes no --regions or --zero-shot")
    if memory.n_prototypes == 0:
        raise InputError(f"memory {memory.path} holds no examples yet; add some with rns add-support first")
    start = time.perf_counter()
    segmenter = Segmenter(backbone, None, memory=memory, options=options)
    names = segmenter.class_names
    # The segmenter's own settings, which may differ from those asked (an image-only backbone runs
    # without text, and without background when no example teaches it).
    background = segmenter.options.background
    request = PhotoRequest(
        text=segmenter.text,
        class_index=memory_class_index(memory, segmenter.plan, background=background),
        num_classes=len(names),
        config=replace(segmenter._adapt_config, solver=solver),
        unmapped=0 if background else None,
        pixel_threshold=segmenter._pixel_threshold,
    )
    table = RowTable.read(memory)
    found = find_photos([info for info in memory.sources() if info.n_prototypes > 0])
    loo = LeaveOneOut(table, request)
    scores = [EntryScore(info.source_id, info.class_names[0] if info.class_names else "",
                         info.meta.get("image", ""), info.meta.get("mask", ""), info.content_key)
              for info in table.entries]  # fmt: skip
    photo_scores: dict[str, PhotoScore] = {}
    for info, image_id in zip(table.entries, table.image_of_entry, strict=True):
        empty = PhotoScore(image_id, info.meta.get("image", ""), [], [])
        photo_score = photo_scores.setdefault(image_id, empty)
        photo_score.source_ids.append(info.source_id)
        photo_score.class_names.extend(info.class_names)
    baselines: dict[str, float] = {}
    cache = feature_cache if feature_cache is not None else {}
    for done, photo in enumerate(found.photos, start=1):
        loaded = load_truth(photo, names, found.skipped)
        if loaded is not None:
            image, truth = loaded
            if photo.image_id not in cache:
                with torch.inference_mode():
                    cache[photo.image_id] = backbone.dense_features(image).cpu()
            geometry = backbone.geometry(image.width, image.height)
            with torch.inference_mode():
                outcome = loo.photo(photo.image_id, cache[photo.image_id], geometry, truth)
            if outcome is not None:
                baselines[str(photo.image_path)] = outcome.baseline
                for entry, delta in outcome.deltas.items():
                    scores[entry].deltas.append(delta)
                    scores[entry].patches += outcome.patches[entry]
                for image_id, delta in outcome.photo_deltas.items():
                    photo_scores[image_id].deltas.append(delta)
        if progress:
            progress(done, len(found.photos))
    return AuditReport(
        memory=str(memory.path), commit=memory.commit, entries=scores, photos_audited=len(baselines),
        photo_baselines=baselines, skipped=found.skipped, skipped_photos=found.skipped_photos,
        seconds=time.perf_counter() - start, head_fits=loo.fits, photos=list(photo_scores.values()),
        threshold=threshold, min_evidence=min_evidence,
    )  # fmt: skip
