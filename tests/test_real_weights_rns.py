"""With real CLIP weights, a few CamVid examples must beat zero-shot on CamVid test photos.

Skips with the reason where real weights (the open_clip cache or RNS_CHECKPOINT) or the CamVid copy are
missing. The floor is deliberately modest (RNS above zero-shot on a handful of photos); the full figures
come from `benchmarks/accuracy.py`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from real_weights import real_weights_or_skip
from shared_data import CAMVID  # RNS_SHARED, else ../shared

from rns.backbone import build_backbone
from rns.evaluate.evaluation import ConfusionMatrix
from rns.io.imageio import load_image, load_mask
from rns.segment.pipeline import Segmenter, SegmentOptions
from rns.teach.mask_conventions import LabelMapping
from rns.teach.support import add_supports
from support_memory import SupportMemory

pytestmark = [pytest.mark.real_weights, pytest.mark.slow]


def _miou(segmenter: Segmenter, pairs: list[tuple[Path, Path]], num_classes: int) -> float:
    matrix = ConfusionMatrix(num_classes)
    for image, mask in pairs:
        matrix.update(load_mask(mask), segmenter.segment(load_image(image)).labels)
    return matrix.scores().miou


def test_examples_from_train_beat_zero_shot_on_test(tmp_path):
    model, pretrained, checkpoint = real_weights_or_skip()
    if not (CAMVID / "classes.txt").is_file():
        pytest.skip(f"CamVid not found at {CAMVID} (RNS_SHARED=DIR sets the folder holding data/camvid)")
    names = LabelMapping.from_classes_file(CAMVID / "classes.txt").class_names
    backbone = build_backbone(model, pretrained, checkpoint)
    train = sorted((CAMVID / "train" / "images").glob("*.jpg"))[::40][:8]
    supports = [(image, CAMVID / "train" / "masks" / f"{image.stem}.png") for image in train]
    memory = SupportMemory.open(tmp_path / "memory.zarr")
    add_supports(backbone, memory, supports, LabelMapping.from_classes_file(CAMVID / "classes.txt"))
    test = sorted((CAMVID / "test" / "images").glob("*.jpg"))[::50][:5]
    queries = [(image, CAMVID / "test" / "masks" / f"{image.stem}.png") for image in test]
    zero = _miou(Segmenter(backbone, names, options=SegmentOptions(zero_shot=True, background=False)),
                 queries, len(names))  # fmt: skip
    adapted = _miou(Segmenter(backbone, names, memory=memory, options=SegmentOptions(background=False)),
                    queries, len(names))  # fmt: skip
    print(f"{backbone!r}: zero-shot mIoU {100 * zero:.1f}, "
          f"RNS with {len(supports)} examples {100 * adapted:.1f}")
    assert adapted > zero
