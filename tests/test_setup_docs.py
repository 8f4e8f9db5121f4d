"""The README's set-up promises: one command sets up and tests, installs come before the test command, and
one variable (`RNS_SHARED`) tells every data test and benchmark where the shared data lives."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _bash_blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", text, flags=re.S)


def _tests_section() -> str:
    readme = (REPO / "README.md").read_text()
    return readme[readme.index("## Tests\n"):readme.index("## Layout\n")]


def test_one_readme_command_sets_up_and_runs_the_ci_test_command() -> None:
    blocks = _bash_blocks(_tests_section())
    assert blocks[0].strip() == "bash .ci/run"
    ci = (REPO / ".ci" / "run").read_text()
    (test_command,) = re.findall(r'^test_command="(.*)"$', ci, flags=re.M)
    by_hand = blocks[1].splitlines()
    assert by_hand[-1].strip() == test_command, ".ci/run must run the README's test command verbatim"
    installs = [i for i, line in enumerate(by_hand) if line.startswith("pip install")]
    assert installs and max(installs) < len(by_hand) - 1
    assert any("download.pytorch.org/whl/cpu" in line for line in by_hand), "say how to get torch's CPU build"


def test_rns_shared_moves_every_data_path(tmp_path: Path) -> None:
    code = "import shared_data, ui_helpers; print(shared_data.CAMVID, ui_helpers.CAMVID, shared_data.PARITY)"
    env = {**os.environ, "RNS_SHARED": str(tmp_path), "PYTHONPATH": f"{REPO / 'tests'}{os.pathsep}{REPO}"}
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    out = run.stdout
    assert out.split() == [str(tmp_path / "data" / "camvid"), str(tmp_path / "data" / "camvid"),
                           str(tmp_path / "parity")]


def test_no_test_or_benchmark_builds_its_own_shared_path() -> None:
    """Only tests/shared_data.py says where the data lives; everything else imports it."""
    pattern = re.compile(r'"shared"\s*/\s*"data"|/work/shared|\.parent\s*/\s*"shared"')
    allowed = {"shared_data.py", "test_setup_docs.py"}
    offenders = [str(path.relative_to(REPO)) for folder in ("tests", "benchmarks")
                 for path in (REPO / folder).rglob("*.py")
                 if path.name not in allowed and pattern.search(path.read_text())]
    assert offenders == []
