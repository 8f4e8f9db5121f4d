"""The rns Python API end to end: zero-shot, teach one labelled example, segment again, save the results.

    python examples/quickstart.py [--model ViT-B-16 --pretrained laion2b_s34b_b88k | --checkpoint FILE]

With `--model rns-tiny-test --pretrained random` it runs anywhere in seconds (random weights: the masks
are meaningless, it only shows the calls).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from rns.backbone import build_backbone
from rns.io.imageio import load_image
from rns.io.outputs import save_segmentation
from rns.segment.pipeline import Segmenter
from rns.teach.mask_conventions import LabelMapping
from rns.teach.support import add_supports
from support_memory import SupportMemory

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=None)
    parser.add_argument("--pretrained", default=None)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--out", type=Path, default=Path("quickstart-out"))
    args = parser.parse_args()

    # Build once: the backbone is the expensive part, and every segmenter can share it.
    backbone = build_backbone(args.model, args.pretrained, args.checkpoint)
    photo = load_image(HERE / "street.jpg")

    zero_shot = Segmenter(backbone, "car,road").segment(photo)
    print("zero-shot:", {name: f"{100 * share:.1f}%" for name, share in zero_shot.fractions().items()})

    # Teach it one labelled example (stored as prototypes in a support memory, never as pixels).
    memory = SupportMemory.open(Path(tempfile.mkdtemp()) / "memory.zarr")
    mapping = LabelMapping.from_classes_file(HERE / "classes.txt")
    add_supports(backbone, memory, [(HERE / "support.jpg", HERE / "support_mask.png")], mapping)

    adapted = Segmenter(backbone, "car,road", memory=memory).segment(photo)
    print("with one example:", {name: f"{100 * share:.1f}%" for name, share in adapted.fractions().items()})
    print("timings (s):", {stage: round(seconds, 3) for stage, seconds in adapted.timings.items()})

    written = save_segmentation(adapted, photo, args.out, "street")
    for kind, path in written.items():
        print(f"{kind:8s} -> {path}")


if __name__ == "__main__":
    main()
