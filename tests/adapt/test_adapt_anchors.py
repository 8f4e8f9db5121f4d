"""Steps 4 and 5: fused anchors, the neutral text prior, pseudo prototypes, and how weights are shared."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rns.adapt import AdaptConfig, ClassText, SupportSet
from rns.adapt.anchors import build_anchor_set, fuse, neutral_text_prior, pseudo_prototypes
from rns.adapt.head import build_problem
from rns.adapt.method import class_roles

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
    # lambda-major, then class, then word: per lambda, class 0's two words then class 1's one
    assert anchors.labels.tolist() == [0, 0, 1] * 6
    assert torch.allclose(anchors.features[:3], torch.cat([fuse(protos[0], text.vectors[0], LAMBDAS[:1]),
                                                           fuse(protos[1], text.vectors[1], LAMBDAS[:1])]))
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
    protos = pseudo_prototypes(queries, zero_shot_labels, [1, 2], text)
    assert sorted(protos) == [1]  # class 2: zero-shot finds it nowhere, so no pseudo prototype (reference)
    assert torch.allclose(protos[1], F.normalize(queries[1:].mean(dim=0), dim=0))


def _support(has_visual: list[bool], labels: list[int], dim: int = 3) -> SupportSet:
    vectors = F.normalize(torch.rand(len(labels), dim), dim=-1) if labels else torch.zeros(0, dim)
    return SupportSet(vectors, torch.tensor(labels, dtype=torch.long),
                      F.normalize(torch.rand(len(has_visual), dim), dim=-1), torch.tensor(has_visual))


def test_class_roles_follow_the_reference_unless_asked_otherwise() -> None:
    text = ClassText.from_list([torch.eye(3)[:1], torch.eye(3)[1:2], torch.eye(3)[2:], None])
    # 0: retrieved; 1: stored, not retrieved; 2: rows only; 3: no text, stored, not retrieved
    support = _support([True, True, False, True], [0, 0, 2])
    roles = class_roles(text, support, AdaptConfig())
    # the reference: a class with examples that no query retrieved gets nothing here (not pseudo anchors),
    # whether it has a name (1) or not (3: the mixed case of a nameless class absent from this image)
    assert sorted(roles.visual) == [0, 2] and roles.pseudo == []
    assert torch.allclose(roles.visual[2], support.vectors[2])  # rows' mean stands in for a prototype
    everyone = class_roles(text, support, AdaptConfig(anchors_need_retrieval=False))
    assert sorted(everyone.visual) == [0, 1, 2, 3] and everyone.pseudo == []
    earlier_rule = class_roles(text, support, AdaptConfig(visual_anchors_without_text=True))
    assert sorted(earlier_rule.visual) == [0, 2, 3]  # rns's option: a nameless class keeps its anchors
    no_examples = _support([True, False, False, True], [0, 0])
    assert class_roles(text, no_examples, AdaptConfig()).pseudo == [1, 2]  # text, no examples at all


def test_problem_weights_are_relevance_normalised_over_all_samples() -> None:
    """The reference: relevance of each sample's class, L1-normalised over all N samples, times the term
    multiplier, averaged (1/N); a pseudo anchor weighs the relevance of its soft target's argmax."""
    text = ClassText.from_list([torch.eye(3)[:1], torch.eye(3)[1:2]])
    anchors = build_anchor_set({0: torch.eye(3)[0], 1: torch.eye(3)[1]}, text, LAMBDAS, None, 3, "cpu")
    relevance = torch.tensor([0.25, 0.75])
    pseudo_targets = torch.tensor([[0.9, 0.1], [0.2, 0.8]]).repeat(6, 1)  # argmax 0, 1, 0, 1, ...
    problem = build_problem(torch.eye(3)[:3], torch.tensor([0, 0, 1]), anchors, anchors, pseudo_targets,
                            relevance, AdaptConfig())
    raw = torch.tensor([0.25, 0.25, 0.75] + [0.25, 0.75] * 6 + [0.25, 0.75] * 6)
    multiplier = torch.tensor([1.0] * 3 + [1.5] * 12 + [0.2] * 12)
    expected = raw / raw.sum() * multiplier / 27
    assert torch.allclose(problem.weights, expected)
    assert problem.kinds.tolist() == [0] * 3 + [1] * 12 + [2] * 12
    assert torch.allclose(problem.targets[15:], pseudo_targets)


def test_per_term_weighting_normalises_within_each_term() -> None:
    text = ClassText.from_list([torch.eye(3)[:1], torch.eye(3)[1:2]])
    anchors = build_anchor_set({0: torch.eye(3)[0], 1: torch.eye(3)[1]}, text, LAMBDAS, None, 3, "cpu")
    relevance = torch.tensor([0.25, 0.75])
    problem = build_problem(torch.eye(3)[:3], torch.tensor([0, 0, 1]), anchors, anchors,
                            torch.full((12, 2), 0.5), relevance, AdaptConfig(weighting="per_term"))
    weights = problem.weights * len(problem)  # undo the mean's 1/N
    support_w, anchor_w, pseudo_w = weights[:3], weights[3:15], weights[15:]
    assert torch.allclose(support_w, torch.tensor([0.25, 0.25, 0.75]) / 1.25)
    assert torch.isclose(anchor_w.sum(), torch.tensor(1.5))
    assert torch.isclose(pseudo_w.sum(), torch.tensor(0.2))
    assert torch.isclose(anchor_w[1] / anchor_w[0], torch.tensor(3.0))
