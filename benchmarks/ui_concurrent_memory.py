"""Peak memory of `rns ui` when many large photos are sent at once (issue 22, item 10).

Starts the real server (uvicorn in a thread, 127.0.0.1, a free port) over the tiny random test model,
sends N distinct photos of the given size to POST /api/segment all at once, and prints the process's
resident memory before and its peak (VmHWM) after. The model is tiny on purpose: what is measured is the
server's own holding of uploads, decoded photos and their features, which the photo-in-flight limit
and the open-photo pixel budget bound.

    python benchmarks/ui_concurrent_memory.py --photos 16 --megapixels 40
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status (Linux only)")


def _photos(count: int, megapixels: float) -> list[bytes]:
    """Distinct smooth JPEGs (small files, full-size when decoded)."""
    width = int((megapixels * 1e6 * 4 / 3) ** 0.5)
    height = int(megapixels * 1e6 / width)
    ramp = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
    base = np.broadcast_to(ramp, (height, width, 3)).astype(np.uint8)
    photos = []
    for index in range(count):
        pixels = base.copy()
        pixels[:64, :64] = index * 7 % 256  # a different photo id each
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=80)
        photos.append(buffer.getvalue())
    return photos


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=int, default=16)
    parser.add_argument("--megapixels", type=float, default=40.0)
    args = parser.parse_args()

    import httpx
    import torch

    torch.set_num_threads(1)
    from rns.backbone import DEFAULT_VARIANT, TINY_TEST_MODEL, build_backbone
    from rns.ui.config import UiConfig
    from rns.ui.server import start_in_thread
    from rns.ui.session import UiSession

    photos = _photos(args.photos, args.megapixels)
    backbone = build_backbone(TINY_TEST_MODEL, pretrained="random", variant=DEFAULT_VARIANT, device="cpu")
    with tempfile.TemporaryDirectory() as folder:
        config = UiConfig(memory_path=Path(folder) / "memory")
        session = UiSession(backbone, config, prefetch_support=False)
        server = start_in_thread(session)
        Path("/proc/self/clear_refs").write_text("5")  # the peak from here on, not from making photos
        before = _status_kb("VmRSS")
        statuses: list[int] = []

        def send(data: bytes, index: int) -> None:
            response = httpx.post(f"{server.url}api/segment", files={"image": (f"p{index}.jpg", data)},
                                  data={"classes": "car,road"}, timeout=3600)  # fmt: skip
            statuses.append(response.status_code)

        started = time.perf_counter()
        threads = [threading.Thread(target=send, args=(data, i)) for i, data in enumerate(photos)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - started
        server.stop()
    peak = _status_kb("VmHWM")
    print(f"{args.photos} photos of {args.megapixels:g} MP sent at once, {config.photos_in_flight} in "
          f"flight, open-photo budget {config.open_pixels / 1e6:g} MP")
    print(f"statuses: {sorted(set(statuses))}  wall: {seconds:.1f} s")
    print(f"RSS before: {before / 1024:.0f} MiB  peak RSS: {peak / 1024:.0f} MiB")
    return 0 if statuses == [200] * len(photos) else 1


if __name__ == "__main__":
    sys.exit(main())
