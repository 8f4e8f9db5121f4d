"""`rns --help` must be instant: the CLI may not import torch, open_clip or zarr until a command runs.

Each check runs in a fresh interpreter (a subprocess), since this test session has long imported torch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import get_args

import pytest

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "open_clip", "zarr")

_PROBE = """
import json, sys
argv = json.loads(sys.argv[1])
if argv is None:
    import rns.cli
else:
    from rns.cli import main
    try:
        main(argv)
    except SystemExit as stop:
        code = stop.code
print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r})), file=sys.stderr)
"""


def _heavy_modules_after(argv: list[str] | None) -> tuple[list[str], str]:
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    probe = _PROBE.format(heavy=set(HEAVY))
    done = subprocess.run([sys.executable, "-c", probe, json.dumps(argv)], capture_output=True, text=True,
                          env=env, timeout=120, check=True)  # fmt: skip
    return json.loads(done.stderr.strip().splitlines()[-1]), done.stdout


def test_importing_the_cli_loads_no_torch_open_clip_or_zarr():
    heavy, _ = _heavy_modules_after(None)
    assert heavy == [], f"`import rns.cli` imported {heavy}"


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["segment", "--help"], ["add-support", "--help"], ["eval", "--help"], ["info", "--help"],
     ["memory", "--help"], ["memory", "list", "--help"], ["memory", "export", "--help"]],
)
def test_help_of_every_command_loads_no_heavy_module(argv):
    heavy, out = _heavy_modules_after(argv)
    assert "Usage:" in out
    assert heavy == [], f"`rns {' '.join(argv)}` imported {heavy}"


def test_light_choice_lists_match_the_modules_that_use_them():
    """The CLI's option lists come from rns.choices; the heavy modules must accept exactly those."""
    from rns import choices
    from rns.adapt.types import AdaptConfig, Solver, Weighting
    from rns.backbone.dense import DEFAULT_VARIANT, VARIANTS
    from rns.backbone.registry import TINY_TEST_MODEL
    from rns.devices import DEVICE_CHOICES
    from rns.teach.support import DEFAULT_BATCH_SIZE

    assert (VARIANTS, DEFAULT_VARIANT) == (choices.VARIANTS, choices.DEFAULT_VARIANT)
    assert DEVICE_CHOICES == choices.DEVICE_CHOICES
    assert tuple(get_args(Solver)) == choices.SOLVERS
    assert AdaptConfig().solver == choices.DEFAULT_SOLVER
    assert tuple(get_args(Weighting)) == choices.WEIGHTINGS
    assert AdaptConfig().weighting == choices.DEFAULT_WEIGHTING
    assert DEFAULT_BATCH_SIZE == choices.DEFAULT_BATCH_SIZE
    assert TINY_TEST_MODEL == choices.TEST_MODEL


def test_help_says_the_tiny_model_is_for_tests():
    from click.testing import CliRunner

    from rns.cli import cli

    result = CliRunner().invoke(cli, ["segment", "--help"])
    text = " ".join(result.output.split())
    assert "rns-tiny-test" in text and "tests only" in text
