"""Step 6: the reference AdamW fit, its reproducibility, and the fast solver's agreement with it."""

from __future__ import annotations

import pytest
import torch

from rns.adapt import AdaptConfig, retrieve_support
from rns.adapt.head import HeadProblem, initial_head, objective
from rns.adapt.predict import plan_head
from rns.adapt.solvers import fit_adamw, fit_head, fit_rescaled_adamw
from rns.adapt.synthetic import SceneSpec, make_scene

CONFIG = AdaptConfig()


# Tiny problems: one torch thread avoids thread hand-offs that dominate on a busy shared CPU.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def scene_problem(seed: int, **spec: object) -> tuple[torch.Tensor, HeadProblem]:
    scene = make_scene(SceneSpec(seed=seed, **spec))
    support = retrieve_support(scene.queries, scene.source, scene.class_index, scene.text.num_classes)
    return scene.queries, plan_head(scene.queries, scene.text, support, CONFIG).problem


@pytest.fixture(scope="module")
def hard_problem() -> tuple[torch.Tensor, HeadProblem]:
    """Overlapping clusters and ambiguous names: many queries near a decision boundary."""
    return scene_problem(1, dim=64, num_classes=6, centre_similarity=0.5, query_noise=1.6, support_noise=0.8,
                         ambiguous=((2, 3),), no_support=(4,))


def test_initial_head_is_seeded_kaiming_uniform_with_zero_bias() -> None:
    head = initial_head(5, 64, seed=3, device="cpu")
    assert torch.equal(head.weight, initial_head(5, 64, seed=3, device="cpu").weight)
    assert not torch.equal(head.weight, initial_head(5, 64, seed=4, device="cpu").weight)
    bound = (6 / 64) ** 0.5  # Kaiming uniform, fan_in, ReLU gain: the reference's Linear
    assert float(head.weight.abs().max()) <= bound and float(head.weight.abs().max()) > 0.9 * bound
    generator = torch.Generator().manual_seed(3)
    expected = torch.empty(5, 64)
    torch.nn.init.kaiming_uniform_(expected, mode="fan_in", nonlinearity="relu", generator=generator)
    assert torch.equal(head.weight, expected)  # the very draw torch's initialiser makes
    assert torch.equal(head.bias, torch.zeros(5))


def test_adamw_lowers_the_objective_and_is_reproducible(hard_problem) -> None:
    _, problem = hard_problem
    start = objective(initial_head(problem.num_classes, problem.dim, 0, "cpu"), problem)
    first, second = fit_adamw(problem, CONFIG), fit_adamw(problem, CONFIG)
    assert float(objective(first, problem)) < 0.5 * float(start)
    assert torch.equal(first.weight, second.weight) and torch.equal(first.bias, second.bias)
    other_seed = fit_adamw(problem, AdaptConfig(seed=1))
    assert not torch.equal(first.weight, other_seed.weight)


def test_hand_written_adamw_at_full_resolution_is_the_torch_reference(hard_problem) -> None:
    _, problem = hard_problem
    reference = fit_adamw(problem, CONFIG)
    manual = fit_rescaled_adamw(problem, CONFIG, steps=CONFIG.steps)
    assert torch.allclose(manual.weight, reference.weight, atol=1e-5)
    assert torch.allclose(manual.bias, reference.bias, atol=1e-5)


def test_fast_solver_agrees_with_the_reference_on_query_labels(hard_problem) -> None:
    queries, problem = hard_problem
    reference = fit_head(problem, AdaptConfig(solver="adamw"))(queries)
    fast = fit_head(problem, AdaptConfig(solver="fast"))(queries)
    agreement = float((fast.argmax(dim=1) == reference.argmax(dim=1)).float().mean())
    assert agreement >= 0.98
    assert torch.allclose(fast.softmax(dim=1), reference.softmax(dim=1), atol=0.15)


def test_fewer_fast_steps_drift_further_from_the_reference(hard_problem) -> None:
    queries, problem = hard_problem
    reference = fit_adamw(problem, CONFIG)(queries).softmax(dim=1)
    fits = [fit_rescaled_adamw(problem, CONFIG, steps)(queries).softmax(dim=1) for steps in (7, 70, 350)]
    gaps = [float((fit - reference).abs().max()) for fit in fits]
    assert gaps[0] > gaps[1] > gaps[2]
