"""Head-fit time and agreement of the solvers on synthetic problems sized like a real image.

    python benchmarks/head_fit.py [--problems 8] [--repeats 3] [--threads 1] [--device cpu] [--busy 2]

Each problem: d=512, 11 classes (background with 3 modes, two pairs of confusable names, one class with no
examples, one with no name), ~1000 queries, the union of their k=4 nearest stored prototypes (a few
hundred rows) plus 6 fused anchors per class. For each solver it prints the median fit time, the share of
query labels equal to the reference's (700-step AdamW), and the mIoU against the synthetic truth next to
the reference's. "lbfgs-l2" is not a solver of the package: it is the exact optimum of the same objective
with an L2 penalty (found by torch's L-BFGS), shown to justify why the fast solver follows AdamW's path
rather than solving the convex problem. `--threads` is the caller's torch setting (the package's solvers
narrow it to what the problem can use, issue 24); `--busy N` times everything beside N CPU-bound processes
of the script's own (`busy.BusyCores`, stopped at the end).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from busy import BusyCores, load_average  # noqa: E402

from rns.adapt import AdaptConfig, retrieve_support  # noqa: E402
from rns.adapt.head import HeadProblem, LinearHead, objective  # noqa: E402
from rns.adapt.method import plan_head  # noqa: E402
from rns.adapt.solvers import fit_adamw, fit_rescaled_adamw  # noqa: E402
from rns.adapt.synthetic import SceneSpec, make_scene, mean_iou  # noqa: E402
from rns.threads import torch_threads  # noqa: E402

NUM_CLASSES = 11


def make_problems(count: int, device: str) -> list[tuple[torch.Tensor, torch.Tensor, HeadProblem]]:
    problems = []
    for seed in range(count):
        spec = SceneSpec(dim=512, num_classes=NUM_CLASSES, queries_per_class=90, supports_per_class=40,
                         centre_similarity=0.6, query_noise=2.5, support_noise=1.0,
                         ambiguous=((2, 3), (4, 5)), no_support=(7,), no_text=(9,), seed=seed)
        scene = make_scene(spec)
        queries = scene.queries.to(device)
        support = retrieve_support(queries, scene.source, scene.class_index, NUM_CLASSES)
        plan = plan_head(queries, scene.text, support, AdaptConfig())
        problems.append((queries, scene.labels.to(device), plan.problem))
    return problems


def lbfgs_l2(problem: HeadProblem, penalty: float) -> LinearHead:
    weight = torch.zeros(problem.num_classes, problem.dim, device=problem.features.device, requires_grad=True)
    bias = torch.zeros(problem.num_classes, device=problem.features.device, requires_grad=True)
    optimiser = torch.optim.LBFGS([weight, bias], max_iter=500, history_size=20,
                                  line_search_fn="strong_wolfe", tolerance_grad=1e-9, tolerance_change=1e-12)

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = objective(LinearHead(weight, bias), problem) + 0.5 * penalty * (weight * weight).sum()
        loss.backward()
        return loss

    optimiser.step(closure)
    return LinearHead(weight.detach(), bias.detach())


def timed(fit: Callable[[], LinearHead], device: str) -> tuple[LinearHead, float]:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    head = fit()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return head, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--busy", type=int, default=0, help="CPU-bound background processes while timing")
    parser.add_argument("--quick", action="store_true", help="time the package's two solvers only (700-step "
                        "AdamW without autograd, the default; fast, 70 steps)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    config = AdaptConfig()
    solvers: dict[str, Callable[[HeadProblem], LinearHead]] = {
        "adamw (reference, 700 steps)": lambda p: fit_adamw(p, config),
        "adamw, no autograd (700 steps)": lambda p: fit_rescaled_adamw(p, config, steps=config.steps),
        **{f"fast ({steps} steps)": (lambda p, s=steps: fit_rescaled_adamw(p, config, steps=s))
           for steps in (35, 70, 140)},
        **{f"lbfgs-l2 (penalty {penalty:g})": (lambda p, q=penalty: lbfgs_l2(p, q))
           for penalty in (1e-3, 1e-4)},
    }
    if args.quick:
        solvers = {name: fit for name, fit in solvers.items() if "no autograd" in name or "70 steps" in name}
    problems = make_problems(args.problems, args.device)
    with BusyCores(args.busy):
        compare(problems, solvers, config, args)


def compare(problems, solvers: dict[str, Callable[[HeadProblem], LinearHead]], config: AdaptConfig,
            args: argparse.Namespace) -> None:
    """Time every solver on every problem and compare its labels with the reference's."""
    sizes = [len(p) for _, _, p in problems]
    print(f"device {args.device}, caller's torch threads {torch.get_num_threads()}, {args.busy} busy "
          f"process(es), load average {load_average()}, {len(problems)} problems: "
          f"{problems[0][0].shape[0]} queries, {min(sizes)}-{max(sizes)} training samples "
          f"(retrieved rows + anchors), d=512, C={NUM_CLASSES}")
    with torch_threads(1):  # not timed: the labels every solver is compared with
        references = [fit_adamw(p, config)(q).argmax(dim=1) for q, _, p in problems]
    reference_miou = statistics.mean(mean_iou(r.cpu(), y.cpu(), NUM_CLASSES)
                                     for r, (_, y, _) in zip(references, problems, strict=True))
    print(f"{'solver':34s} {'median ms':>10s} {'agree min':>10s} {'agree mean':>11s} {'mIoU':>7s} "
          f"(reference mIoU {reference_miou:.4f})")
    for name, fit in solvers.items():
        times, agreements, mious = [], [], []
        for (queries, truth, problem), reference in zip(problems, references, strict=True):
            for _ in range(args.repeats):
                head, seconds = timed(lambda f=fit, p=problem: f(p), args.device)
                times.append(seconds)
            labels = head(queries).argmax(dim=1)
            agreements.append(float((labels == reference).float().mean()))
            mious.append(mean_iou(labels.cpu(), truth.cpu(), NUM_CLASSES))
        print(f"{name:34s} {1000 * statistics.median(times):10.1f} {min(agreements):10.4f} "
              f"{statistics.mean(agreements):11.4f} {statistics.mean(mious):7.4f}")


if __name__ == "__main__":
    main()
