"""Steps 4 and 5: fused anchors, the neutral text prior, pseudo prototypes, and how weights are shared."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rns.adapt import AdaptConfig, ClassText, SupportSet
from rns.adapt.anchors import build_anchor_set, fuse, neutral_text_prior, pseudo_prototypes
from rns.adapt.head import build_problem
from rns.adapt.predict import class_roles

LAMBDAS = (0.9, 0.8, 0.6, 0.4, 0.2, 0.0)


def test_fuse_blends_visual_and_text_over_the_lambda_grid() -> None:
    visual, text = torch.tensor([1.0, 0.0]), torch.tensor([[0.0, 1.0]])
    anchors = fuse(visual, text, LAMBDAS)
    assert anchors.shape == (6, 2)
    expected = F.normalize(torch.tensor([[lam, 1 - lam] for lam in LAMBDAS]), dim=-1)
    assert torch.allclose(anchors, expected)
    assert torch.allclose(fuse(visual, None, LAMBDAS), visual[None])


def test_a_class_with_several_words_gets_anchors_per_word_sharing_its_weight() -> None:
    text = ClassText.from_list([torch.eye(3)[:2], torch.eye(3)[2:]])
    protos = {0: torch.tensor([1.0, 1.0, 0.0]), 1: torch.tensor([0.0, 0.0, 1.0])}
    anchors = build_anchor_set(protos, text, LAMBDAS, None, 3, "cpu")
    assert anchors.labels.tolist() == [0] * 12 + [1] * 6
    assert torch.allclose(anchors.share[anchors.labels == 0].sum(), torch.tensor(6.0))
    assert torch.allclose(anchors.share[anchors.labels == 1].sum(), torch.tensor(6.0))


def test_a_class_without_text_is_fused_with_the_neutral_prior() -> None:
    text = ClassText.from_list([torch.eye(3)[:2], torch.eye(3)[2:], None])
    prior = neutral_text_prior(text, "cpu")
    # background's two words are averaged first, so each class counts once
    expected = F.normalize(F.normalize(torch.tensor([1.0, 1.0, 0.0]), dim=0) + torch.eye(3)[2], dim=0)
    assert torch.allclose(prior, expected)
    anchors = build_anchor_set({2: torch.tensor([1.0, 0.0, 0.0])}, text, (0.0,), prior, 3, "cpu")
    assert torch.allclose(anchors.features[0], prior)


def test_pseudo_prototype_pools_the_queries_zero_shot_gives_the_class() -> None:
    text = ClassText.from_list([torch.eye(3)[:1], torch.eye(3)[1:2], torch.eye(3)[2:]])
    queries = F.normalize(torch.tensor([[1.0, 0.1, 0.0], [0.1, 1.0, 0.0], [0.0, 1.0, 0.3]]), dim=-1)
    zero_shot_labels = torch.tensor([0, 1, 1])
    protos, from_image = pseudo_prototypes(queries, zero_shot_labels, [1, 2], text)
    assert from_image == [1]
    assert torch.allclose(protos[1], F.normalize(queries[1:].mean(dim=0), dim=0))
    assert torch.allclose(protos[2], torch.eye(3)[2])  # nobody assigned: the text stands in


def _support(has_visual: list[bool], labels: list[int], dim: int = 3) -> SupportSet:
    vectors = F.normalize(torch.rand(len(labels), dim), dim=-1) if labels else torch.zeros(0, dim)
    return SupportSet(vectors, torch.tensor(labels, dtype=torch.long),
                      F.normalize(torch.rand(len(has_visual), dim), dim=-1), torch.tensor(has_visual))


def test_class_roles_follow_the_reference_unless_asked_otherwise() -> None:
    text = ClassText.from_list([torch.eye(3)[:1], torch.eye(3)[1:2], torch.eye(3)[2:], None])
    support = _support([True, True, False, True], [0, 0, 2])  # 1: stored, not retrieved; 2: rows only
    roles = class_roles(text, support, AdaptConfig())
    assert sorted(roles.visual) == [0, 2, 3] and roles.pseudo == [1]
    assert torch.allclose(roles.visual[2], support.vectors[2])  # rows' mean stands in for a prototype
    everyone = class_roles(text, support, AdaptConfig(anchors_need_retrieval=False))
    assert sorted(everyone.visual) == [0, 1, 2, 3] and everyone.pseudo == []


def test_problem_weights_are_relevance_normalised_within_each_term() -> None:
    text = ClassText.from_list([torch.eye(3)[:1], torch.eye(3)[1:2]])
    anchors = build_anchor_set({0: torch.eye(3)[0], 1: torch.eye(3)[1]}, text, LAMBDAS, None, 3, "cpu")
    relevance = torch.tensor([0.25, 0.75])
    problem = build_problem(torch.eye(3)[:3], torch.tensor([0, 0, 1]), anchors, anchors,
                            torch.full((12, 2), 0.5), relevance, AdaptConfig())
    support_w, anchor_w, pseudo_w = problem.weights[:3], problem.weights[3:15], problem.weights[15:]
    assert torch.allclose(support_w, torch.tensor([0.25, 0.25, 0.75]) / 1.25)
    assert torch.isclose(anchor_w.sum(), torch.tensor(1.5))
    assert torch.isclose(pseudo_w.sum(), torch.tensor(0.2))
    assert torch.isclose(anchor_w[6] / anchor_w[0], torch.tensor(3.0))
    assert torch.allclose(problem.targets[15:], torch.full((12, 2), 0.5))
