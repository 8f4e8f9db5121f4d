"""How long `rns ui` takes to segment a photo again after a teach (issue 15 target: < 1 s, 480x360, CPU).

The page's loop: open a photo (backbone runs once), segment, correct, teach, segment again. Only the last
two steps repeat while a person works on a photo, so they are what this measures, both through the
Python session and end to end over HTTP (form parsing, the label PNG and JSON included). Speed does not
depend on the weights, so the real-size ViT-B-16 is built with random weights (`pretrained="random"`);
the segmentations are meaningless, the timings are not. The memory starts with `--supports` CamVid train
images (ground-truth masks), so retrieval searches a memory rather than an empty one.

    python benchmarks/ui_resegment.py                          # ViT-B-16, 10 supports, 5 repeats
    python benchmarks/ui_resegment.py --model rns-tiny-test    # quick wiring run
    python benchmarks/ui_resegment.py --repeats 10 --busy 2    # the teach/segment loop beside 2 busy cores

`--busy N` (issue 24) runs N CPU-bound processes of the script's own (`busy.BusyCores`) through the timed
teach/segment loops (not the model build or first segment), and stops them at the end, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from busy import BusyCores, load_average  # noqa: E402

from rns.backbone import DEFAULT_VARIANT, build_backbone  # noqa: E402
from rns.teach.mask_conventions import LabelMapping  # noqa: E402
from rns.teach.support import add_supports  # noqa: E402
from rns.ui.config import UiConfig  # noqa: E402
from rns.ui.session import UiSession  # noqa: E402
from support_memory import SupportMemory  # noqa: E402

sys.path.insert(0, str(ROOT / "tests"))
from shared_data import CAMVID as DEFAULT_DATA  # noqa: E402  (RNS_SHARED, else ../shared)

CLASSES = ["road", "car", "tree", "building", "sky", "sidewalk", "pedestrian"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--model", default="ViT-B-16")
    parser.add_argument("--supports", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--verbose", action="store_true", help="print the stages of every re-segment")
    parser.add_argument("--busy", type=int, default=0, help="CPU-bound background processes during the loop")
    args = parser.parse_args()
    if not (args.data / "test" / "images").is_dir():
        sys.exit(f"CamVid not found at {args.data}; pass --data (or set RNS_SHARED)")
    if args.threads:
        torch.set_num_threads(args.threads)

    started = time.perf_counter()
    backbone = build_backbone(args.model, pretrained="random", variant=DEFAULT_VARIANT, device="cpu")
    print(f"model {args.model} (random weights, timings only), {torch.get_num_threads()} torch thread(s), "
          f"{os.cpu_count()} CPU(s); built in {time.perf_counter() - started:.1f} s")  # fmt: skip

    memory_path = Path(tempfile.mkdtemp(prefix="rns-ui-bench-")) / "memory"
    names = (args.data / "classes.txt").read_text().split("\n")[:11]
    train = sorted((args.data / "train" / "images").glob("*.jpg"))[: args.supports]
    pairs = [(image, args.data / "train" / "masks" / f"{image.stem}.png") for image in train]
    if pairs:
        started = time.perf_counter()
        mapping = LabelMapping(values=dict(enumerate(names)))
        add_supports(backbone, SupportMemory.open(memory_path), pairs, mapping)
        print(f"memory: {len(pairs)} CamVid train images added in {time.perf_counter() - started:.1f} s")

    session = UiSession(backbone, UiConfig(memory_path=memory_path))
    photo_path = sorted((args.data / "test" / "images").glob("*.jpg"))[0]
    photo = session.open_photo(photo_path.read_bytes(), photo_path.name)
    first = session.segment(photo, CLASSES)
    regions_started = time.perf_counter()
    regions = session.correction_regions(photo)
    regions_seconds = time.perf_counter() - regions_started
    print(f"photo {photo_path.name} {photo.image.width}x{photo.image.height}: first segment "
          f"{first.seconds:.2f} s (backbone {first.segmentation.timings.get('backbone', 0):.2f} s), "
          f"superpixels {regions_seconds:.2f} s")  # fmt: skip

    support_wait_start = time.perf_counter() - regions_started
    with BusyCores(args.busy):
        loads = [load_average()]
        teach_times, session_times, again = _session_loop(session, photo, regions, first, args)
        http_teach, http_times = _http_loop(session, photo, regions, args.repeats)
        loads.append(load_average())
    print(f"{args.busy} busy background process(es) during the loops; load average {loads[0]} -> {loads[1]}")

    def show(label: str, values: list[float]) -> None:
        each = " ".join(f"{value:.3f}" for value in values)
        print(f"{label:<36} median {statistics.median(values):.3f} s  worst {max(values):.3f} s  "
              f"(each: {each})")

    print(f"first teach of the photo (waits for its support features, started in the background by the "
          f"first segment {support_wait_start:.1f} s earlier): {teach_times[0]:.3f} s")  # fmt: skip
    show("later teaches (cached features)", teach_times[1:])
    show("re-segment after teach (session)", session_times)
    show("teach, HTTP /api/teach", http_teach)
    show("re-segment after teach, HTTP", http_times)
    stages = again.segmentation.timings
    print("last re-segment stages: " + ", ".join(f"{k} {v:.3f}" for k, v in stages.items()))


def _session_loop(session: UiSession, photo, regions: np.ndarray, first, args: argparse.Namespace):
    """Teach a corrected region, then segment again, `args.repeats` times through the Python session."""
    teach_times, session_times = [], []
    labels = first.segmentation.labels
    sizes = np.bincount(regions.ravel())
    for repeat in range(args.repeats):
        region = int(np.argsort(sizes)[-1 - repeat])  # a different correction each time
        mask = np.full(labels.shape, 255, np.uint8)
        mask[regions == region] = 1 + (repeat % len(CLASSES))
        outcome = session.teach(photo, mask, ["background", *CLASSES])
        teach_times.append(outcome.seconds)
        again = session.segment(photo, CLASSES)
        assert not again.computed_features, "the backbone ran again"
        session_times.append(again.seconds)
        if args.verbose:
            stages = again.segmentation.timings
            other = again.seconds - stages.get("total", 0.0)
            print(f"  repeat {repeat}: {again.seconds:.3f} s = segmenter and memory refresh {other:.3f} + "
                  + ", ".join(f"{k} {v:.3f}" for k, v in stages.items() if k != "total"))  # fmt: skip
    return teach_times, session_times, again


def _http_loop(session: UiSession, photo, regions: np.ndarray, repeats: int
               ) -> tuple[list[float], list[float]]:  # fmt: skip
    """POST /api/teach then POST /api/segment (by photo id) against a real server, `repeats` times."""
    try:
        import httpx

        from rns.ui.encoding import labels_png_base64
        from rns.ui.server import start_in_thread
    except ImportError as error:
        print(f"(HTTP timing skipped: {error}; pip install '.[ui,test]')")
        return [float("nan")], [float("nan")]
    import base64

    server = start_in_thread(session)
    sizes = np.bincount(regions.ravel())
    teach_times, segment_times = [], []
    try:
        with httpx.Client(base_url=server.url, timeout=120) as client:
            for repeat in range(repeats):
                mask = np.full(regions.shape, 255, np.uint8)
                mask[regions == int(np.argsort(sizes)[-1 - repeat])] = 1 + (repeat % len(CLASSES))
                png = base64.b64decode(labels_png_base64(mask))
                started = time.perf_counter()
                form = {"photo": photo.photo_id, "classes": ",".join(["background", *CLASSES])}
                taught = client.post("/api/teach", files={"mask": ("mask.png", png)}, data=form)
                teach_times.append(time.perf_counter() - started)
                taught.raise_for_status()
                started = time.perf_counter()
                form = {"photo": photo.photo_id, "classes": ",".join(CLASSES)}
                response = client.post("/api/segment", data=form)
                segment_times.append(time.perf_counter() - started)
                response.raise_for_status()
                assert response.json()["computed_features"] is False
    finally:
        server.stop()
    return teach_times, segment_times


if __name__ == "__main__":
    main()
