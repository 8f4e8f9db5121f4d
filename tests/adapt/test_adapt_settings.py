"""The paper's partial-support settings and the mixed cases it never ran, on hand-made vectors.

What the head is trained on in each setting (docs/PARITY.md, "Settings"): no text (the reference's
`use_text: false`), classes without a name (neutral text prior, uniform relevance), classes without examples
(pseudo anchors), background on, a class with neither, a nameless class absent from the image.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from rns.adapt import AdaptConfig, ClassText, SupportSet
from rns.adapt.anchors import neutral_text_prior
from rns.adapt.head import SAMPLE_KINDS
from rns.adapt.method import plan_head
from rns.errors import InputError

DIM = 6
LAMBDAS = (0.9, 0.8, 0.6, 0.4, 0.2, 0.0)


def axis(*indices: int) -> torch.Tensor:
    return torch.eye(DIM)[list(indices)]


def support(rows: list[int], has_visual: list[bool]) -> SupportSet:
    """Retrieved rows of the given classes (one row each, near the class's axis) and class prototypes."""
    num_classes = len(has_visual)
    vectors = F.normalize(axis(*rows) + 0.1 * axis(*[(r + 1) % DIM for r in rows]), dim=-1)
    return SupportSet(vectors, torch.tensor(rows, dtype=torch.long), axis(*range(num_classes)),
                      torch.tensor(has_visual))


QUERIES = F.normalize(torch.eye(DIM)[:4] + 0.3, dim=-1)
NAMED = ClassText.from_list([axis(0), axis(1), axis(2), axis(3)], ["a", "b", "c", "d"])
NAMELESS_2 = ClassText.from_list([axis(0), axis(1), None, axis(3)], ["a", "b", "my-mug", "d"])


def kinds(plan) -> list[str]:
    return [SAMPLE_KINDS[int(k)] for k in plan.problem.kinds]


@pytest.mark.parametrize("text,config", [
    (NAMED, AdaptConfig(use_text=False)),
    (NAMED.without_text(), AdaptConfig()),
], ids=["use_text-off", "no-class-has-text"])
def test_no_text_trains_on_the_retrieved_rows_alone(text: ClassText, config: AdaptConfig) -> None:
    """The reference's `use_text: false` (`main_eval.py:308-332`, `core/rns.py:102-111`)."""
    retrieved = support([0, 1, 1, 3], [True, True, True, True])
    plan = plan_head(QUERIES, text, retrieved, config)
    assert kinds(plan) == ["retrieved"] * 4
    assert torch.equal(plan.problem.features, retrieved.vectors)
    assert torch.allclose(plan.relevance, torch.full((4,), 0.25))
    assert torch.allclose(plan.problem.weights, torch.full((4,), 0.25 / 4))  # L1-normalised, mean over 4


def test_no_text_option_adds_each_class_prototype_as_one_anchor() -> None:
    retrieved = support([0, 1], [True, True, True, True])
    plan = plan_head(QUERIES, NAMED.without_text(), retrieved, AdaptConfig(visual_anchors_without_text=True))
    assert kinds(plan) == ["retrieved"] * 2 + ["anchor"] * 4  # every class with examples, retrieved or not
    assert torch.equal(plan.problem.features[2:], retrieved.class_vectors)


def test_no_text_refuses_a_class_without_examples() -> None:
    with pytest.raises(InputError, match="'c'"):
        plan_head(QUERIES, NAMED, support([0, 1], [True, True, False, True]), AdaptConfig(use_text=False))


def test_a_nameless_class_is_fused_with_the_neutral_prior_and_relevance_is_uniform() -> None:
    """The reference's partial-text setting (`main_eval.py:291-303`, `core/rns.py:102-104`)."""
    plan = plan_head(QUERIES, NAMELESS_2, support([0, 1, 2, 3], [True] * 4), AdaptConfig())
    assert torch.allclose(plan.relevance, torch.full((4,), 0.25))
    prior = F.normalize(axis(0, 1, 3).sum(dim=0), dim=0)  # normalised mean of the named classes' text
    anchors = plan.problem.features[plan.problem.kinds == 1]
    labels = plan.problem.targets[plan.problem.kinds == 1].argmax(dim=1)
    last = anchors[-4:]  # lambda 0: pure text, in class order
    assert labels[-4:].tolist() == [0, 1, 2, 3]
    assert torch.allclose(last[2], prior, atol=1e-6)
    assert torch.allclose(last[0], axis(0)[0])
    scored = plan_head(QUERIES[:1], NAMELESS_2, support([0, 1, 2, 3], [True] * 4),
                       AdaptConfig(nameless_relevance="mean"))
    assert int(scored.relevance.argmax()) == 0  # rns's option scores the named classes


def test_the_zero_shot_pass_scores_a_nameless_class_with_the_neutral_prior() -> None:
    """Class 3 has no examples (pseudo anchors). A query closest to the neutral prior is the nameless
    class's in the zero-shot pass, so it does not enter class 3's pseudo prototype, and the soft targets
    give the nameless class the prior's probability (the reference reads the prior like any text)."""
    text = ClassText.from_list([axis(0), axis(1), None, axis(3)])
    prior = neutral_text_prior(text, "cpu")
    queries = F.normalize(torch.stack([axis(3)[0] + 0.2 * axis(0)[0], prior + 0.05 * axis(3)[0]]), dim=-1)
    plan = plan_head(queries, text, support([0, 1, 2], [True, True, True, False]), AdaptConfig())
    pseudo = plan.problem.kinds == 2
    assert plan.pseudo_from_image == [3]
    anchor_lambda_1 = plan.problem.features[pseudo][0]  # lambda 0.9: mostly the pseudo prototype
    expected = F.normalize(0.9 * queries[0] + 0.1 * axis(3)[0], dim=0)
    assert torch.allclose(anchor_lambda_1, expected, atol=1e-6)
    targets = plan.problem.targets[pseudo]
    columns = text.with_prior(prior).stacked("cpu")[0]
    expected_targets = torch.softmax(100 * plan.problem.features[pseudo] @ columns.T, dim=1)
    assert torch.allclose(targets, expected_targets, atol=1e-6)
    assert float(targets[:, 2].max()) > 0.0  # the nameless class is a column of the soft target


def test_with_background_on_its_words_count_once_in_the_prior_and_relevance_covers_it() -> None:
    """Mixed case: background (class 0, several words) and a nameless class. Background is a named class:
    its words, averaged, enter the neutral prior once; relevance is uniform over every class with it."""
    text = ClassText.from_list([axis(4, 5), axis(1), None], ["background", "b", "my-mug"])
    plan = plan_head(QUERIES, text, support([0, 1, 2], [True, True, True]), AdaptConfig())
    assert torch.allclose(plan.relevance, torch.full((3,), 1 / 3))
    background = F.normalize(axis(4, 5).sum(dim=0), dim=0)
    prior = F.normalize(background + axis(1)[0], dim=0)
    mug_anchors = plan.problem.features[(plan.problem.kinds == 1) & (plan.problem.targets[:, 2] == 1)]
    assert torch.allclose(mug_anchors[-1], prior, atol=1e-6)


def test_a_nameless_class_not_retrieved_here_gets_no_samples() -> None:
    """Mixed case: a nameless class with examples in the memory that no query retrieved gets nothing in
    this image (the reference's filter, `core/rns.py:186-192`); it cannot be predicted here."""
    plan = plan_head(QUERIES, NAMELESS_2, support([0, 1, 3], [True] * 4), AdaptConfig())
    assert int(plan.problem.targets[:, 2].sum()) == 0
    kept = plan_head(QUERIES, NAMELESS_2, support([0, 1, 3], [True] * 4),
                     AdaptConfig(visual_anchors_without_text=True))
    assert int(kept.problem.targets[:, 2].sum()) == len(LAMBDAS)  # rns's earlier rule, as an option


def test_a_class_with_neither_name_nor_examples_is_refused() -> None:
    with pytest.raises(InputError, match="'my-mug'.*add-support"):
        plan_head(QUERIES, NAMELESS_2, support([0, 1, 3], [True, True, False, True]), AdaptConfig())


def test_with_prior_fills_only_the_nameless_classes() -> None:
    prior = F.normalize(torch.ones(DIM), dim=0)
    filled = NAMELESS_2.with_prior(prior)
    assert torch.equal(filled.vectors[0], NAMELESS_2.vectors[0])
    assert torch.allclose(filled.vectors[2], prior[None])
    assert NAMELESS_2.with_prior(None) is NAMELESS_2
