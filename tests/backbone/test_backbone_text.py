"""Text features: the template list, averaging, normalisation and the per-prompt caches."""

from __future__ import annotations

import zlib

import torch
import torch.nn.functional as F

from rns.backbone import IMAGENET_TEMPLATES
from rns.backbone.text import TextFeatureCache


class CountingEncoder:
    """A stand-in text tower: a fixed random vector per sentence, counting the sentences it encodes."""

    def __init__(self, dim: int = 8) -> None:
        self.dim = dim
        self.sentences: list[str] = []

    def __call__(self, sentences: list[str]) -> torch.Tensor:
        self.sentences.extend(sentences)
        rows = [torch.randn(self.dim, generator=torch.Generator().manual_seed(zlib.crc32(s.encode())))
                for s in sentences]
        return torch.stack(rows) * 3.0


def _cache(encoder, tmp_path=None, fingerprint=None):
    return TextFeatureCache(encoder, encoder.dim, torch.device("cpu"), fingerprint or {"model": "m"},
                            disk_dir=tmp_path)


def test_templates_are_clips_eighty_imagenet_templates():
    from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

    assert len(IMAGENET_TEMPLATES) == 80 == len(set(IMAGENET_TEMPLATES))
    assert all(t.count("{}") == 1 for t in IMAGENET_TEMPLATES)
    assert [t.format("dog") for t in IMAGENET_TEMPLATES] == [t("dog") for t in OPENAI_IMAGENET_TEMPLATES]


def test_feature_is_normalised_mean_of_normalised_template_features():
    encoder = CountingEncoder()
    got = _cache(encoder).encode(["bus"])
    per_template = F.normalize(encoder([t.format("bus") for t in IMAGENET_TEMPLATES]), dim=-1)
    assert torch.allclose(got[0], F.normalize(per_template.mean(0), dim=0), atol=1e-6)
    assert torch.allclose(got.norm(dim=-1), torch.ones(1))


def test_memory_cache_returns_identical_tensors_and_encodes_once():
    encoder = CountingEncoder()
    cache = _cache(encoder)
    first = cache.encode(["car", "road", "car"])
    assert len(encoder.sentences) == 2 * 80  # "car" encoded once despite appearing twice
    assert torch.equal(first[0], first[2])
    second = cache.encode(["road", "car"])
    assert len(encoder.sentences) == 2 * 80
    assert torch.equal(second, first[[1, 0]])
    assert len(cache) == 2


def test_tiny_backbone_text_is_cached_and_normalised(tiny_backbone):
    first = tiny_backbone.encode_text(["car", "road"])
    again = tiny_backbone.encode_text(["car", "road"])
    assert first.shape == (2, tiny_backbone.dim)
    assert torch.equal(first, again)
    assert torch.allclose(first.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert not torch.allclose(first[0], first[1])
    assert tiny_backbone.encode_text([]).shape == (0, tiny_backbone.dim)


def test_disk_cache_is_reused_only_under_the_same_fingerprint(tmp_path):
    writer = CountingEncoder()
    stored = _cache(writer, tmp_path).encode(["tree"])
    reader = CountingEncoder()
    assert torch.equal(_cache(reader, tmp_path).encode(["tree"]), stored)
    assert reader.sentences == []
    other = CountingEncoder()
    _cache(other, tmp_path, fingerprint={"model": "another"}).encode(["tree"])
    assert len(other.sentences) == 80


def test_damaged_disk_entry_is_recomputed(tmp_path):
    _cache(CountingEncoder(), tmp_path).encode(["sky"])
    (entry,) = list(tmp_path.rglob("*.pt"))
    entry.write_bytes(b"not a tensor file")
    encoder = CountingEncoder()
    feats = _cache(encoder, tmp_path).encode(["sky"])
    assert len(encoder.sentences) == 80
    assert torch.allclose(feats.norm(dim=-1), torch.ones(1))


def test_trimmed_text_encoding_equals_open_clips_full_length_forward(tiny_backbone):
    from rns.backbone.text import encode_tokens_trimmed

    sentences = ["a photo of a car.", "itap of my extraordinarily long and winding country road."]
    tokens = tiny_backbone._tokenizer(sentences)
    model = tiny_backbone.model
    with torch.inference_mode():
        full = model.encode_text(tokens)
        trimmed = encode_tokens_trimmed(model, tokens)
    assert trimmed.shape == full.shape
    assert torch.allclose(trimmed, full, atol=1e-5)
