"""Retrieval weights stored by `rns memory audit --apply`: exact weighted search, weighted prototypes, and
a memory without weights (or with weights of 1 only) segmenting bit for bit as before."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from synthetic_images import save_pair, two_texture_image

from rns.adapt import retrieve_support, score_queries
from rns.adapt.retrieval import ArraySource, merged_class_prototypes
from rns.segment.class_plan import memory_class_index
from rns.segment.pipeline import Segmenter
from rns.teach.mask_conventions import LabelMapping
from rns.teach.retrieval_weights import WEIGHT_KEY, WeightedSource, weighted_source
from rns.teach.support import add_supports
from support_memory import SupportMemory


class _Memory:
    """An ArraySource with the few SupportMemory calls WeightedSource makes (search scores, source rows)."""

    def __init__(self, vectors: np.ndarray, class_ids: np.ndarray) -> None:
        self.array = ArraySource(vectors, class_ids)

    def search(self, queries, k):
        rows = self.array.search(queries, k)
        scores = np.where(rows >= 0, np.take_along_axis(queries @ self.array.vectors.T,
                                                        np.maximum(rows, 0), axis=1), -np.inf)  # fmt: skip
        return type("Found", (), {"rows": rows, "scores": scores.astype(np.float32)})

    def rows(self, rows):
        return self.array.rows(rows)

    def live_rows(self):
        return self.array.live_rows()

    def source_rows(self, source_id):
        return np.array([int(source_id)], dtype=np.int64)


def test_weighted_search_is_the_exact_top_k_of_weighted_similarities():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(40, 6)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    weights = {str(r): w for r, w in [(3, 0.0), (7, 0.5), (11, 0.2), (20, 0.0), (33, 0.9)]}
    source = WeightedSource(_Memory(vectors, rng.integers(0, 3, 40)), weights)
    queries = rng.normal(size=(25, 6)).astype(np.float32)
    found = source.search(queries, 4)
    scores = queries @ vectors.T
    w = np.ones(40, dtype=np.float32)
    for row, weight in weights.items():
        w[int(row)] = weight
    weighted = np.where(scores > 0, scores * w, scores)
    weighted[:, w == 0] = -np.inf
    expected = np.argsort(-weighted, axis=1, kind="stable")[:, :4]
    np.testing.assert_array_equal(found, expected)
    assert not np.isin(found, [3, 20]).any()
    assert set(source.live_rows()) == set(range(40)) - {3, 20}


def test_weighted_prototypes_drop_excluded_rows_and_classes():
    vectors = np.eye(4, dtype=np.float32)
    source = WeightedSource(_Memory(vectors, np.array([0, 0, 1, 2])), {"1": 0.0, "3": 0.0})
    ids, protos = source.class_prototypes()
    np.testing.assert_array_equal(ids, [0, 1])  # class 2 had one row, now excluded
    np.testing.assert_allclose(protos[0], [1, 0, 0, 0])


@pytest.fixture(scope="module")
def memory(tmp_path_factory, tiny_backbone) -> SupportMemory:
    folder = tmp_path_factory.mktemp("weights")
    pairs = [save_pair(folder, f"s{i}", i) for i in range(3)]
    memory = SupportMemory.open(folder / "memory.zarr")
    add_supports(tiny_backbone, memory, pairs, LabelMapping.parse("0=background,1=red"))
    return memory


def _before(backbone, memory, image):
    """What the pipeline computed before retrieval weights existed: the memory searched as it is."""
    segmenter = Segmenter(backbone, None, memory=memory)
    features = backbone.dense_features(image)
    queries = features.reshape(-1, features.shape[-1])
    index = memory_class_index(memory, segmenter.plan, background=True)
    prototypes = merged_class_prototypes(memory, index, len(segmenter.class_names), 0)
    support = retrieve_support(queries, memory, index, len(segmenter.class_names),
                               segmenter.options.adapt, unmapped=0, prototypes=prototypes)  # fmt: skip
    return score_queries(queries, segmenter.text, support, segmenter._adapt_config).probs


def test_a_memory_without_weights_segments_bit_for_bit_as_before(memory, tiny_backbone, one_torch_thread):
    image = Image.fromarray(two_texture_image(5))
    segmenter = Segmenter(tiny_backbone, None, memory=memory)
    assert weighted_source(memory) is memory and segmenter._rows_source is memory
    features = tiny_backbone.dense_features(image)
    result = segmenter.segment_features(image, features)
    expected = _before(tiny_backbone, memory, image)
    geometry = tiny_backbone.geometry(image.width, image.height)
    labels, _ = segmenter._to_pixels(expected, geometry, None, segmenter._pixel_threshold)
    np.testing.assert_array_equal(result.labels, labels)
    key = segmenter.settings_key()

    # Scores recorded with weights of 1 (what --apply writes for entries that do not hurt) change nothing.
    sources = memory.sources()
    memory.update_meta({info.source_id: {"audit_score": "2.5", WEIGHT_KEY: "1"} for info in sources})
    again = Segmenter(tiny_backbone, None, memory=memory)
    assert again._rows_source is memory and again.settings_key() == key
    np.testing.assert_array_equal(again.segment_features(image, features).labels, result.labels)
    assert torch.equal(_before(tiny_backbone, memory, image), expected)

    # An excluded entry is a weighted memory: another settings key, and its row is never retrieved.
    memory.update_meta({sources[0].source_id: {WEIGHT_KEY: "0"}})
    weighted = Segmenter(tiny_backbone, None, memory=memory)
    assert isinstance(weighted._rows_source, WeightedSource) and weighted.settings_key() != key
    excluded = memory.source_rows(sources[0].source_id)
    queries = features.reshape(-1, features.shape[-1]).numpy()
    assert not np.isin(weighted._rows_source.search(queries, 4), excluded).any()
    memory.update_meta({info.source_id: {WEIGHT_KEY: None, "audit_score": None} for info in sources})
