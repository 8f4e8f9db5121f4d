"""Steps 1 and 2: zero-shot logits and class relevance, on hand-made vectors whose answers are known."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from rns.adapt import AdaptConfig, ClassText, zero_shot
from rns.adapt.relevance import class_relevance
from rns.adapt.zero_shot import text_similarity, zero_shot_logits
from rns.errors import InputError


def basis(dim: int, *axes: int) -> torch.Tensor:
    return torch.eye(dim)[list(axes)]


def test_similarity_takes_the_best_of_a_class_s_vectors_and_minus_inf_without_text() -> None:
    text = ClassText.from_list([basis(4, 0, 1), basis(4, 2), None])
    queries = F.normalize(torch.tensor([[0.1, 0.9, 0.3, 0.0], [0.2, 0.0, 1.0, 0.0]]), dim=-1)
    sims = text_similarity(queries, text)
    assert torch.allclose(sims[:, 0], torch.maximum(queries[:, 0], queries[:, 1]))
    assert torch.allclose(sims[:, 1], queries[:, 2])
    assert torch.isinf(sims[:, 2]).all() and (sims[:, 2] < 0).all()


def test_zero_shot_logits_scale_by_temperature() -> None:
    text = ClassText.from_list([basis(3, 0), basis(3, 1)])
    queries = F.normalize(torch.tensor([[1.0, 0.5, 0.0]]), dim=-1)
    assert torch.allclose(zero_shot_logits(queries, text, 100.0), 100.0 * queries[:, :2])


def test_zero_shot_result_labels_each_query_by_its_nearest_text() -> None:
    text = ClassText.from_list([basis(3, 0), basis(3, 1), basis(3, 2)])
    queries = F.normalize(torch.tensor([[0.1, 0.2, 0.9], [0.8, 0.1, 0.1], [0.2, 0.7, 0.1]]), dim=-1)
    result = zero_shot(queries, text)
    assert result.labels.tolist() == [2, 0, 1]
    assert torch.allclose(result.probs.sum(dim=1), torch.ones(3))


def test_background_threshold_sends_unsure_queries_to_background() -> None:
    text = ClassText.from_list([basis(2, 0), basis(2, 1)])
    queries = F.normalize(torch.tensor([[0.70, 0.71], [0.0, 1.0]]), dim=-1)  # first is a near tie
    unthresholded = zero_shot(queries, text)
    thresholded = zero_shot(queries, text, AdaptConfig(background_threshold=0.9))
    assert unthresholded.labels.tolist() == [1, 1]
    assert thresholded.labels.tolist() == [0, 1]


def test_zero_shot_refuses_a_class_without_text_and_names_it() -> None:
    text = ClassText.from_list([basis(2, 0), None], ["background", "my-backpack"])
    with pytest.raises(InputError, match="my-backpack.*add-support"):
        zero_shot(torch.eye(2), text)


def test_relevance_favours_the_classes_the_image_shows() -> None:
    text = ClassText.from_list([basis(3, 0), basis(3, 1), basis(3, 2)])
    queries = F.normalize(torch.tensor([[0.1, 1.0, 0.0], [0.0, 1.0, 0.2]]), dim=-1)
    weights = class_relevance(queries, text, temperature=10.0)
    assert torch.isclose(weights.sum(), torch.tensor(1.0))
    assert int(weights.argmax()) == 1
    image = F.normalize(queries.mean(dim=0), dim=-1)
    assert torch.allclose(weights, torch.softmax(10.0 * image, dim=0), atol=1e-6)


def test_relevance_is_uniform_as_soon_as_a_class_has_no_name() -> None:
    """The reference (`core/rns.py:102-104`): with any nameless class, no class is scored."""
    text = ClassText.from_list([basis(3, 0), basis(3, 1), None])
    weights = class_relevance(F.normalize(torch.tensor([[1.0, 0.2, 0.5]]), dim=-1), text)
    assert torch.allclose(weights, torch.full((3,), 1 / 3))


def test_relevance_option_gives_a_class_without_text_the_mean_weight() -> None:
    text = ClassText.from_list([basis(3, 0), basis(3, 1), None])
    weights = class_relevance(F.normalize(torch.tensor([[1.0, 0.2, 0.5]]), dim=-1), text, nameless="mean")
    assert torch.isclose(weights.sum(), torch.tensor(1.0))
    assert torch.isclose(weights[2], weights[:2].mean())
    assert not torch.isclose(weights[0], weights[1])


def test_relevance_switched_off_or_without_any_text_is_uniform() -> None:
    text = ClassText.from_list([basis(3, 0), basis(3, 1), basis(3, 2)])
    queries = F.normalize(torch.tensor([[1.0, 0.0, 0.0]]), dim=-1)
    assert torch.allclose(class_relevance(queries, text, enabled=False), torch.full((3,), 1 / 3))
    assert torch.allclose(class_relevance(queries, text.without_text()), torch.full((3,), 1 / 3))
