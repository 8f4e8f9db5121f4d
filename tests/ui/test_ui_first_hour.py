"""Issue 26 item 13 for `rns ui`: a URL a browser opens for --host 0.0.0.0, and a busy port reported before
the model loads; plus the documentation claims the issue found wrong."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_every_address_host_prints_a_url_a_browser_opens() -> None:
    from rns.ui.server import bind_socket, url_of

    sock = bind_socket("0.0.0.0", 0)
    try:
        url = url_of(sock)
    finally:
        sock.close()
    assert url.startswith("http://127.0.0.1:") and "0.0.0.0" not in url


def test_a_busy_port_is_refused_before_the_model_loads() -> None:
    """The model named here does not exist: had it been loaded first, the error would name it instead."""
    pytest.importorskip("fastapi", reason="the ui extra is not installed: pip install '.[ui]'")
    from rns.ui.server import bind_socket

    taken = bind_socket("127.0.0.1", 0)
    try:
        port = taken.getsockname()[1]
        path = f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": path}
        command = [sys.executable, "-c", "from rns.cli import main; main()", "ui", "--port", str(port),
                   "--model", "no-such-model", "--device", "cpu"]
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    finally:
        taken.close()
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and f"cannot listen on 127.0.0.1:{port}" in lines[0], done.stderr


def test_the_docs_claim_no_missing_option_and_count_the_example_photos() -> None:
    readme = (REPO / "README.md").read_text()
    assert "--threads" not in readme  # `rns ui` has no such option
    examples = (REPO / "examples" / "README.md").read_text()
    photos = sorted(p.name for p in (REPO / "examples").glob("*.jpg"))
    assert len(photos) == 2 and "The two photos" in examples and "three" not in examples
