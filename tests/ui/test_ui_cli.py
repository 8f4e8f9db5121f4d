"""`rns ui` as a command: light to import, one line without the extra, and a held check of the real
command (started on a free local port, its JSON API called, a screenshot taken in Chromium)."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from cli_runner import TINY

from tests.ui_helpers import camvid_photos, decode_png_base64

CHROMIUM = os.environ.get("RNS_CHROMIUM", "/usr/bin/chromium")


def _python(code: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env,
                          timeout=timeout)  # fmt: skip


def test_the_cli_does_not_import_the_web_stack() -> None:
    result = _python("import sys, rns.cli; web = ('fastapi', 'uvicorn', 'starlette', 'rns.ui.app'); "
                     "print(sorted(m for m in web if m in sys.modules))")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_without_the_extra_rns_ui_prints_one_line_naming_it() -> None:
    # A None entry in sys.modules makes the package look absent, as in an install without the extra.
    result = _python("import sys; sys.modules['fastapi'] = None; from rns.cli import main; main()", "ui")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert 'pip install "rns[ui]"' in lines[0] and "fastapi" in lines[0]


def test_only_loopback_hosts_go_without_a_warning() -> None:
    from rns.ui.server import exposure_warning

    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        assert exposure_warning(host) is None, host
    for host in ("0.0.0.0", "192.168.1.10", "example.org"):
        warning = exposure_warning(host)
        assert warning is not None and host in warning and "no password" in warning


def test_a_busy_port_is_a_one_line_error() -> None:
    from rns.errors import InputError
    from rns.ui.server import bind_socket

    taken = bind_socket("127.0.0.1", 0)
    try:
        port = taken.getsockname()[1]
        with pytest.raises(InputError, match=f"cannot listen on 127.0.0.1:{port}.*--port"):
            bind_socket("127.0.0.1", port)
    finally:
        taken.close()


def _read_lines(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line)


def test_held_check_rns_ui_on_a_free_port_answers_the_api_and_renders(tmp_path: Path) -> None:
    httpx = pytest.importorskip("httpx", reason="httpx is not installed: pip install '.[test]'")
    pytest.importorskip("fastapi", reason="the ui extra is not installed: pip install '.[ui]'")
    (photo,) = camvid_photos(1)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-c", "from rns.cli import main; main()", "ui", "--port", "0",
               "--memory", str(tmp_path / "memory"), *TINY]  # fmt: skip
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_read_lines, args=(process.stdout, lines), daemon=True).start()
    try:
        try:
            line = lines.get(timeout=120)
        except queue.Empty:
            pytest.fail("rns ui printed no URL within 120 s")
        assert line.startswith("rns ui: open http://127.0.0.1:"), line
        url = line.split()[3]
        info = httpx.get(f"{url}api/info", timeout=30).json()
        assert info["model"] == "rns-tiny-test" and info["memory"]["exists"] is False
        with photo.open("rb") as handle:
            answer = httpx.post(f"{url}api/segment", files={"image": (photo.name, handle)},
                                data={"classes": "road,sky"}, timeout=120).json()  # fmt: skip
        assert answer["classes"] == ["background", "road", "sky"]
        assert decode_png_base64(answer["labels"]).shape == (360, 480)
        if Path(CHROMIUM).exists():
            _screenshot(url, tmp_path / "held.png")
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
            pytest.fail("rns ui did not stop on Ctrl+C within 30 s")
    assert process.returncode in (0, 130), process.stderr.read()


def _screenshot(url: str, path: Path) -> None:
    from PIL import Image

    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip)")
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)
        try:
            page = browser.new_page()
            page.goto(url)
            page.wait_for_selector("#model-info:not(:empty)", timeout=60_000)
            page.screenshot(path=str(path))
        finally:
            browser.close()
    shot = np.asarray(Image.open(path).convert("L"))
    assert shot.shape[0] > 100 and shot.std() > 5  # a rendered page, not a blank one


def test_a_missing_images_folder_is_a_one_line_error_before_the_model_loads(tmp_path: Path) -> None:
    pytest.importorskip("fastapi", reason="the ui extra is not installed: pip install '.[ui]'")
    missing = tmp_path / "nowhere"
    result = _python("from rns.cli import main; main()", "ui", "--images", str(missing), "--port", "0")
    assert result.returncode == 2
    assert result.stderr.strip() == f"rns: error: --images {missing} is not a folder: give a folder of photos"


def test_a_missing_sam_checkpoint_is_a_one_line_error_before_the_model_loads(tmp_path: Path) -> None:
    pytest.importorskip("fastapi", reason="the ui extra is not installed: pip install '.[ui]'")
    missing = tmp_path / "sam.pth"
    result = _python("from rns.cli import main; main()", "ui", "--sam-checkpoint", str(missing),
                     "--port", "0")  # fmt: skip
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"SAM checkpoint {missing}" in lines[0], result.stderr
