"""The text-feature caches stay bounded however many class names arrive (the ui takes them from anyone)."""

from __future__ import annotations

import torch

from rns.backbone.text import TextFeatureCache
from tests.backbone.test_backbone_text import CountingEncoder


def test_memory_and_disk_caches_keep_only_the_most_recently_used_prompts(tmp_path) -> None:
    encoder = CountingEncoder()
    cache = TextFeatureCache(encoder, encoder.dim, torch.device("cpu"), {"model": "m"}, disk_dir=tmp_path,
                             memory_entries=3, disk_entries=5)  # fmt: skip
    names = [f"class {i}" for i in range(12)]
    first = {name: cache.encode([name])[0] for name in names}
    assert len(cache) == 3
    files = list(tmp_path.rglob("*.pt"))
    assert len(files) == 5, files
    # The newest five come back from disk without the text tower; identical values.
    encoded = len(encoder.sentences)
    fresh = TextFeatureCache(encoder, encoder.dim, torch.device("cpu"), {"model": "m"}, disk_dir=tmp_path,
                             memory_entries=3, disk_entries=5)  # fmt: skip
    for name in names[-5:]:
        assert torch.equal(fresh.encode([name])[0], first[name])
    assert len(encoder.sentences) == encoded
    # An evicted one is computed again (same value) and takes the place of the least recently used.
    assert torch.allclose(fresh.encode([names[0]])[0], first[names[0]])
    assert len(encoder.sentences) == encoded + 80
    assert len(list(tmp_path.rglob("*.pt"))) == 5


def test_one_call_with_more_prompts_than_the_memory_holds_still_answers_them_all() -> None:
    encoder = CountingEncoder()
    cache = TextFeatureCache(encoder, encoder.dim, torch.device("cpu"), {"model": "m"}, memory_entries=2)
    features = cache.encode(["a", "b", "c", "d", "a"])
    assert features.shape == (5, encoder.dim) and torch.equal(features[0], features[4])
    assert len(cache) == 2
