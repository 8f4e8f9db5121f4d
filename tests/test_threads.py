"""Per-stage torch threads (issue 24): small stages narrow the pool, and always give the caller's back."""

from __future__ import annotations

import pytest
import torch

from rns.adapt import AdaptConfig
from rns.adapt.head import HeadProblem
from rns.adapt.solvers import fit_adamw, fit_head
from rns.threads import WORK_PER_THREAD, threads_for, threads_per_worker, torch_threads


@pytest.fixture
def caller_threads():
    """Restore the session's thread count whatever a test set."""
    previous = torch.get_num_threads()
    yield
    torch.set_num_threads(previous)


def small_problem(rows: int = 90, dim: int = 512, classes: int = 11, seed: int = 0) -> HeadProblem:
    """One image's head problem in size: 90 samples, d = 512, 11 classes."""
    generator = torch.Generator().manual_seed(seed)
    features = torch.nn.functional.normalize(torch.randn(rows, dim, generator=generator), dim=1)
    labels = torch.randint(0, classes, (rows,), generator=generator)
    weights = torch.rand(rows, generator=generator)
    targets = torch.nn.functional.one_hot(labels, classes).float()
    return HeadProblem(features, targets, weights / weights.sum(), torch.zeros(rows, dtype=torch.long))


def test_torch_threads_restores_the_callers_count_also_when_the_block_raises(caller_threads) -> None:
    torch.set_num_threads(3)
    with torch_threads(1) as count:
        assert count == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == 3
    with pytest.raises(RuntimeError, match="inside"), torch_threads(1):
        raise RuntimeError("inside")
    assert torch.get_num_threads() == 3
    with pytest.raises(ValueError, match="at least one thread"), torch_threads(0):
        pass


def test_threads_for_gives_small_work_one_thread_and_never_widens_the_callers_pool(caller_threads) -> None:
    torch.set_num_threads(2)
    assert threads_for(90 * 513 * 11) == 1  # a head fit's products
    assert threads_for(100 * WORK_PER_THREAD) == 2  # large work: the caller's pool, not more
    assert threads_for(100 * WORK_PER_THREAD, available=8) == 8
    assert threads_for(3 * WORK_PER_THREAD, available=8) == 3


def test_ray_workers_share_the_nodes_cores() -> None:
    assert threads_per_worker(16, 4) == 4
    assert threads_per_worker(16, 5) == 3
    assert threads_per_worker(2, 8) == 1  # more actors than cores: one each, never zero
    assert threads_per_worker(0.5, 1) == 1


def test_head_fit_leaves_the_callers_threads_and_fits_the_same_weights_at_any_setting(caller_threads) -> None:
    problem, config = small_problem(), AdaptConfig()
    fits = {}
    for count in (1, 2, 3):
        torch.set_num_threads(count)
        fits[count] = fit_head(problem, config)
        assert torch.get_num_threads() == count
    for count in (2, 3):
        assert torch.equal(fits[count].weight, fits[1].weight) and torch.equal(fits[count].bias, fits[1].bias)


def test_head_fit_restores_the_callers_threads_when_it_raises(caller_threads) -> None:
    from rns.adapt.head import LinearHead

    problem = small_problem()
    wrong_start = LinearHead(torch.zeros(7, problem.dim), torch.zeros(7))  # 7 classes, the targets have 11
    torch.set_num_threads(2)
    with pytest.raises(RuntimeError):  # raised inside the loop, on one thread
        fit_head(problem, AdaptConfig(), start=wrong_start)
    assert torch.get_num_threads() == 2


def test_fused_and_plain_updates_both_give_the_torch_adamw_weights(monkeypatch) -> None:
    """The one-kernel AdamW step and its separate-op fallback are the reference's arithmetic."""
    import rns.adapt.solvers as solvers

    problem, config = small_problem(rows=60, dim=64, classes=5, seed=1), AdaptConfig(steps=200)
    with torch_threads(1):  # autograd's reference, on a busy CPU
        reference = fit_adamw(problem, config)
    fused = fit_head(problem, config)
    monkeypatch.setattr(solvers, "_has_fused_adamw", lambda params: False)
    plain = fit_head(problem, config)
    for head in (fused, plain):
        assert torch.allclose(head.weight, reference.weight, atol=1e-5)
        assert torch.allclose(head.bias, reference.bias, atol=1e-5)


def test_a_ray_actor_takes_the_thread_share_the_driver_gives_it(tiny_backbone, tmp_path, caller_threads):
    """`SegmentWorker` (built here in-process, as Ray builds it in an actor) sets its process's threads."""
    from rns.run.ray_worker import SegmentWorker, WriteJob, worker_recipe
    from rns.segment.pipeline import Segmenter

    recipe = worker_recipe(Segmenter(tiny_backbone, "car"))
    job = WriteJob(str(tmp_path), frozenset({"labels"}), "key", 1, None, 0.5, (0, 0, 0), str(tmp_path))
    torch.set_num_threads(2)
    worker = SegmentWorker(recipe, job, threads=1)
    assert worker.error is None and torch.get_num_threads() == 1
