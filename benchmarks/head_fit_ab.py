"""Another checkout's head fit (e.g. main's) against this one's, alternating in one process, quiet and busy.

    python benchmarks/head_fit_ab.py --baseline ../main [--threads 2] [--runs 5] [--busy 2] [--rows 90]

Issue 24's check: the exact 700-step fit of a synthetic `rows` x 512 x 11 problem (`fit_head`, default
config), the caller at `--threads` torch threads. Each run times the baseline's `fit_head` (its
`rns/adapt/solvers.py`, loaded by path; the rest of the package is this checkout's) and this checkout's
back to back, first with the `--busy` background processes paused, then running (`busy.BusyCores`), so
both columns come from one run. Prints medians and worsts, the largest weight difference, the load average.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from busy import BusyCores, load_average, loaded  # noqa: E402

from rns.adapt import AdaptConfig  # noqa: E402
from rns.adapt.head import HeadProblem  # noqa: E402
from rns.adapt.solvers import fit_head  # noqa: E402


def synthetic_problem(rows: int, dim: int = 512, classes: int = 11) -> HeadProblem:
    generator = torch.Generator().manual_seed(0)
    features = torch.nn.functional.normalize(torch.randn(rows, dim, generator=generator), dim=1)
    labels = torch.randint(0, classes, (rows,), generator=generator)
    weights = torch.rand(rows, generator=generator)
    targets = torch.nn.functional.one_hot(labels, classes).float()
    return HeadProblem(features, targets, weights / weights.sum(), torch.zeros(rows, dtype=torch.long))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True,
                        help="a checkout holding rns/adapt/solvers.py")
    parser.add_argument("--threads", type=int, default=2, help="the caller's torch threads")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--busy", type=int, default=2)
    parser.add_argument("--rows", type=int, default=90)
    args = parser.parse_args()
    path = args.baseline / "rns" / "adapt" / "solvers.py"
    if not path.is_file():
        sys.exit(f"no {path}: pass --baseline CHECKOUT (a folder with rns/adapt/solvers.py)")
    spec = importlib.util.spec_from_file_location("baseline_solvers", path)
    baseline = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(baseline)
    torch.set_num_threads(args.threads)
    problem, config = synthetic_problem(args.rows), AdaptConfig()
    fits = {"baseline": baseline.fit_head, "this checkout": fit_head}
    difference = (fits["baseline"](problem, config).weight - fit_head(problem, config).weight).abs().max()
    columns = ["quiet"] + (["busy"] if args.busy else [])
    times = {(name, column): [] for name in fits for column in columns}
    loads = []
    with BusyCores(args.busy) as busy:
        busy.pause()
        for _ in range(args.runs):
            for column in columns:
                with loaded(busy if column == "busy" else None):
                    for name, fit in fits.items():
                        started = time.perf_counter()
                        fit(problem, config)
                        times[(name, column)].append(time.perf_counter() - started)
                    loads.append(load_average())
    print(f"{args.rows} x 512 x 11, caller at {args.threads} torch threads, {args.runs} runs, --busy "
          f"{args.busy}; largest weight difference {float(difference):.2e}; load average "
          f"{min(loads)}-{max(loads)}")  # fmt: skip
    for (name, column), values in times.items():
        print(f"{name:14s} {column:6s} median {1000 * statistics.median(values):9.1f} ms   worst "
              f"{1000 * max(values):9.1f} ms")


if __name__ == "__main__":
    main()
