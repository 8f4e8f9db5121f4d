"""Shared pieces of the `rns ui` tests: CamVid photos, and a real uvicorn server on a free local port."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from shared_data import CAMVID  # RNS_SHARED, else ../shared


def camvid_photos(count: int) -> list[Path]:
    """The first `count` CamVid test photos; skips (with the reason) when the data is absent."""
    folder = CAMVID / "test" / "images"
    if not folder.is_dir():
        pytest.skip(f"CamVid is not at {CAMVID} (RNS_SHARED=DIR sets the folder holding data/camvid)")
    return sorted(folder.glob("*.jpg"))[:count]


def camvid_mask(photo: Path) -> Path:
    return photo.parent.parent / "masks" / f"{photo.stem}.png"


def camvid_classes() -> list[str]:
    return (CAMVID / "classes.txt").read_text().split("\n")[:11]


def decode_png_base64(text: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(text))))


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


@contextmanager
def running_server(backbone, tmp_path: Path, correction_regions=None,
                   **config) -> Iterator[tuple[str, object]]:  # fmt: skip
    """A real uvicorn server (in a thread, 127.0.0.1, free port) over a fresh memory; stopped after."""
    pytest.importorskip("fastapi", reason="the ui extra is not installed: pip install '.[ui]'")
    from rns.ui.config import UiConfig
    from rns.ui.server import start_in_thread
    from rns.ui.session import UiSession

    session = UiSession(backbone, UiConfig(memory_path=tmp_path / "memory", **config),
                        correction_regions=correction_regions)  # fmt: skip
    server = start_in_thread(session, "127.0.0.1", 0, timeout_s=30)
    try:
        yield server.url, session
    finally:
        server.stop(timeout_s=10)
        assert not server.thread.is_alive(), "the ui server thread did not stop"
