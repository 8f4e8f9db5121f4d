"""The head fit's rows as combinations of fewer vectors: exact factors, and the same fit through them."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from rns.adapt import AdaptConfig, ClassText, retrieve_support
from rns.adapt.anchors import build_anchor_set, neutral_text_prior
from rns.adapt.head import SAMPLE_KINDS, HeadProblem
from rns.adapt.method import plan_head
from rns.adapt.row_products import DirectProducts, FactoredProducts, row_products
from rns.adapt.solvers import fit_adamw, fit_head
from rns.adapt.synthetic import SceneSpec, make_scene

LAMBDAS = (0.9, 0.8, 0.6, 0.4, 0.2, 0.0)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_anchor_factors_give_back_every_anchor_with_or_without_text() -> None:
    generator = torch.Generator().manual_seed(0)
    words = [torch.randn(4, 16, generator=generator), torch.randn(1, 16, generator=generator), None]
    text = ClassText.from_list(words)
    protos = {c: torch.randn(16, generator=generator) for c in range(3)}  # unnormalised on purpose
    for prior in (neutral_text_prior(text, "cpu"), None):
        anchors = build_anchor_set(protos, text, LAMBDAS, prior, 16, "cpu")
        assert torch.allclose(anchors.factors.rows(), anchors.features, atol=1e-6)
        prior_words = 1 if prior is not None else 0  # nameless: mixed with the prior, or alone
        assert anchors.factors.rank == (1 + 4) + (1 + 1) + (1 + prior_words)
        assert len(anchors.factors) == len(anchors) == 6 * (4 + 1 + prior_words) + (1 - prior_words)


@pytest.fixture(scope="module")
def image_problem() -> HeadProblem:
    """One image's problem at the real sizes: d = 512, 12 classes, background described by 24 words,
    retrieved rows, fused anchors, and pseudo anchors for a class without examples."""
    scene = make_scene(SceneSpec(dim=512, num_classes=12, background_modes=24, supports_per_class=2,
                                 no_support=(5,), seed=3))
    support = retrieve_support(scene.queries, scene.source, scene.class_index, scene.text.num_classes)
    return plan_head(scene.queries, scene.text, support, AdaptConfig()).problem


def test_the_problems_factors_give_back_its_rows_in_every_term(image_problem) -> None:
    problem = image_problem
    assert set(problem.kinds.tolist()) == set(range(len(SAMPLE_KINDS)))  # retrieved, anchor, pseudo
    assert torch.allclose(problem.factors.rows(), problem.features, atol=1e-6)
    assert problem.factors.rank < len(problem) / 2


def test_the_fit_through_the_factors_is_the_direct_fit_and_torchs_adamw(image_problem) -> None:
    problem = image_problem
    assert isinstance(row_products(problem), FactoredProducts)
    direct = replace(problem, factors=None)
    assert isinstance(row_products(direct), DirectProducts)
    factored_head, direct_head = fit_head(problem, AdaptConfig()), fit_head(direct, AdaptConfig())
    reference = fit_adamw(direct, AdaptConfig())
    for head in (factored_head, direct_head):
        assert torch.allclose(head.weight, reference.weight, atol=1e-5)
        assert torch.allclose(head.bias, reference.bias, atol=1e-5)


def test_the_fast_solver_through_the_factors_is_the_fast_solver_directly(image_problem) -> None:
    config = AdaptConfig(solver="fast")
    factored, direct = fit_head(image_problem, config), fit_head(replace(image_problem, factors=None), config)
    assert torch.allclose(factored.weight, direct.weight, atol=1e-5)
    assert torch.allclose(factored.bias, direct.bias, atol=1e-5)


def test_a_problem_of_many_retrieved_rows_gets_no_factors_and_is_multiplied_directly() -> None:
    scene = make_scene(SceneSpec(dim=512, num_classes=12, background_modes=24, supports_per_class=8, seed=3))
    support = retrieve_support(scene.queries, scene.source, scene.class_index, scene.text.num_classes)
    problem = plan_head(scene.queries, scene.text, support, AdaptConfig()).problem
    assert int((problem.kinds == 0).sum()) > 150  # retrieved rows: each its own basis vector
    assert problem.factors is None
    assert isinstance(row_products(problem), DirectProducts)
