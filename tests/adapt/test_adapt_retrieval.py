"""Step 3: the retrieved support set, through the row-source protocol and the in-memory source."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from rns.adapt import AdaptConfig, ArraySource, nearest_rows, retrieve_support
from rns.adapt.synthetic import SceneSpec, make_scene


def unit_rows(*rows: list[float]) -> np.ndarray:
    array = np.array(rows, dtype=np.float32)
    return array / np.linalg.norm(array, axis=1, keepdims=True)


@pytest.fixture
def source() -> ArraySource:
    vectors = unit_rows([1, 0, 0], [0.9, 0.1, 0], [0, 1, 0], [0, 0.9, 0.1], [0, 0, 1])
    return ArraySource(vectors, np.array([10, 10, 20, 20, 30]))


def test_array_source_returns_the_k_best_rows_best_first_and_minus_one_past_the_end(source) -> None:
    rows = source.search(unit_rows([1, 0.05, 0]), 2)
    assert rows.tolist() == [[0, 1]]
    assert source.search(unit_rows([1, 0, 0]), 7)[0, 5:].tolist() == [-1, -1]


def test_nearest_rows_is_the_deduplicated_union_over_queries(source) -> None:
    queries = torch.from_numpy(unit_rows([1, 0.05, 0], [0.95, 0.1, 0], [0, 1, 0.05]))
    assert nearest_rows(queries, source, 2).tolist() == [0, 1, 2, 3]


def test_nearest_rows_accepts_a_bare_callable_and_a_result_object_with_rows() -> None:
    def search(queries: np.ndarray, k: int) -> SimpleNamespace:
        assert queries.dtype == np.float32 and k == 3
        return SimpleNamespace(rows=np.array([[4, -1, 2], [2, 7, -1]]))

    assert nearest_rows(torch.ones(2, 3), search, 3).tolist() == [2, 4, 7]


def test_retrieve_support_maps_memory_classes_unasked_to_background_and_none_dropped(source) -> None:
    queries = torch.from_numpy(unit_rows([1, 0, 0], [0, 1, 0], [0, 0, 1]))
    support = retrieve_support(queries, source, {10: 1, 30: None}, num_classes=2, config=AdaptConfig(k=2))
    assert support.num_rows == 4  # row 4 (class 30) dropped
    assert sorted(support.labels.tolist()) == [0, 0, 1, 1]  # class 20 was not asked: background
    assert support.has_visual.tolist() == [True, True]
    assert torch.allclose(support.class_vectors[1], torch.nn.functional.normalize(
        torch.from_numpy(source.vectors[:2].mean(axis=0)), dim=0))


def test_several_memory_classes_merge_into_one_background_prototype(source) -> None:
    queries = torch.from_numpy(unit_rows([1, 0, 0]))
    support = retrieve_support(queries, source, {10: 1}, num_classes=2)
    _, protos = source.class_prototypes([20, 30])
    expected = protos.mean(axis=0) / np.linalg.norm(protos.mean(axis=0))
    assert np.allclose(support.class_vectors[0].numpy(), expected, atol=1e-6)


def test_irrelevant_supports_far_away_are_not_retrieved() -> None:
    scene = make_scene(SceneSpec(distractors=30, seed=3))
    rows = nearest_rows(scene.queries, scene.source, 4)
    assert len(rows) > 0
    assert not set(rows.tolist()) & set(scene.distractor_rows.tolist())
    # while every asked class, and each background mode, is found
    assert set(scene.source.class_ids[rows].tolist()) == set(range(5))


def test_without_retrieval_every_row_is_a_support() -> None:
    scene = make_scene(SceneSpec(distractors=10, seed=3))
    retrieved = retrieve_support(scene.queries, scene.source, scene.class_index, 5, AdaptConfig())
    everything = retrieve_support(scene.queries, scene.source, scene.class_index, 5,
                                  AdaptConfig(use_retrieval=False))
    assert everything.num_rows == len(scene.source) > retrieved.num_rows
    assert int((everything.labels == 0).sum()) > int((retrieved.labels == 0).sum())  # distractors: bg


def test_an_empty_memory_gives_an_empty_support_set() -> None:
    empty = ArraySource(np.zeros((0, 3), dtype=np.float32), np.zeros(0, dtype=np.int64))
    support = retrieve_support(torch.eye(3), empty, {}, num_classes=2)
    assert support.is_empty and support.class_vectors.shape == (2, 3)


def test_the_support_memory_store_satisfies_the_protocol_even_after_removals(tmp_path) -> None:
    from support_memory import SupportMemory

    memory = SupportMemory.open(tmp_path / "memory")
    fingerprint = {"model": "synthetic"}
    memory.put_source("a", unit_rows([1, 0, 0], [0, 1, 0]), ["bus", "road"], fingerprint=fingerprint)
    memory.put_source("b", unit_rows([0, 0, 1]), ["tree"], fingerprint=fingerprint)
    memory.put_source("c", unit_rows([0.9, 0.1, 0], [0.1, 0.9, 0]), ["bus", "road"], fingerprint=fingerprint)
    memory.remove_source("a")  # leaves dead rows behind
    ids = {info.name: info.id for info in memory.classes()}
    class_index = {ids["bus"]: 1}  # "road" and "tree" are not asked: background
    queries = torch.from_numpy(unit_rows([1, 0, 0]))
    near = retrieve_support(queries, memory, class_index, 2, AdaptConfig(k=1))
    assert near.labels.tolist() == [1] and near.has_visual.tolist() == [True, True]
    every = retrieve_support(queries, memory, class_index, 2, AdaptConfig(use_retrieval=False))
    assert sorted(every.labels.tolist()) == [0, 0, 1]
    assert len(memory.live_rows()) == 3 and memory.source_rows("b").size == 1
