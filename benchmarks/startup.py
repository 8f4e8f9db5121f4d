"""Startup cost of the command line: wall time of `rns --help` and `rns segment --help`, and what they import.

Each command runs as a fresh subprocess (as a user runs it), 5 times after one warm-up; the median is
reported. A second, instrumented run lists the modules the command imported, its peak memory, and says
whether torch, open_clip or zarr were among them (they must not be: each costs seconds and hundreds of MB).

Usage:
    python benchmarks/startup.py            # a table
    python benchmarks/startup.py --json     # the same as JSON
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "open_clip", "zarr")
COMMANDS = (["--help"], ["segment", "--help"])
RUNS = 5

_RUN = "import sys; from rns.cli import main; main(sys.argv[1:])"
_LIST = (
    "import sys, json, resource\nfrom rns.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n"
    "    pass\nrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
    "sys.stderr.write('\\nMODULES ' + json.dumps({'rss_kib': rss, 'modules': sorted(sys.modules)}))"
)


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def time_command(argv: list[str], runs: int = RUNS) -> list[float]:
    """Wall seconds of `rns ARGV` as a new process, `runs` times after one untimed warm-up."""
    seconds = []
    for attempt in range(runs + 1):
        began = time.perf_counter()
        subprocess.run([sys.executable, "-c", _RUN, *argv], env=_env(), check=True, capture_output=True)
        if attempt:
            seconds.append(time.perf_counter() - began)
    return seconds


def imported_modules(argv: list[str]) -> tuple[list[str], int]:
    """Every module `rns ARGV` imported (interpreter start-up included), and its peak memory in KiB."""
    done = subprocess.run([sys.executable, "-c", _LIST, *argv], env=_env(), check=True, capture_output=True,
                          text=True)  # fmt: skip
    found = json.loads(done.stderr.rsplit("MODULES ", 1)[1])
    return found["modules"], int(found["rss_kib"])


def bare_python_seconds(runs: int = RUNS) -> float:
    """Median wall time of `python -c pass`: the floor no CLI can go under."""
    seconds = []
    for _ in range(runs):
        began = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        seconds.append(time.perf_counter() - began)
    return statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()
    rows = []
    for argv in COMMANDS:
        seconds = time_command(argv)
        modules, rss_kib = imported_modules(argv)
        top = sorted({name.split(".")[0] for name in modules})
        rows.append({
            "command": "rns " + " ".join(argv),
            "median_s": statistics.median(seconds),
            "runs_s": seconds,
            "n_modules": len(modules),
            "peak_rss_mib": rss_kib / 1024,
            "heavy_imported": {name: name in top for name in HEAVY},
            "top_level_packages": top,
        })  # fmt: skip
    result = {"python": sys.version.split()[0], "bare_python_median_s": bare_python_seconds(), "rows": rows}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"python {result['python']}; bare `python -c pass`: {result['bare_python_median_s']:.3f} s")
    for row in rows:
        heavy = ", ".join(f"{name} {'YES' if hit else 'no'}" for name, hit in row["heavy_imported"].items())
        print(f"{row['command']:<20} median {row['median_s']:.3f} s of {RUNS}  {row['n_modules']} modules  "
              f"peak {row['peak_rss_mib']:.0f} MiB  ({heavy})")  # fmt: skip
        rns_modules = [name for name in row["top_level_packages"] if name not in sys.stdlib_module_names]
        print(f"  non-stdlib packages: {', '.join(rns_modules)}")


if __name__ == "__main__":
    main()
