"""Zero-shot segmentation of a real CamVid photo with real CLIP weights: does the backbone *work*?

Runs only where real weights exist (the default tag in the open_clip cache, or RNS_CHECKPOINT) and the
CamVid copy is present; otherwise it skips and says which is missing. It does the zero-shot argmax itself
from `dense_features` and `encode_text`, so it checks the backbone alone, not the pipeline.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from real_weights import real_weights_or_skip
from shared_data import CAMVID  # RNS_SHARED, else ../shared

from rns.backbone import build_backbone

CAMVID_TEST = CAMVID / "test"
ROAD, CAR, IGNORE = 3, 8, 255
MIN_IOU = {"road": 0.30, "car": 0.15}  # modest: training-free CLIP features, one image, no post-processing

pytestmark = [pytest.mark.real_weights, pytest.mark.slow]


def _photo_with_road_and_car() -> tuple[Image.Image, np.ndarray]:
    if not (CAMVID_TEST / "images").is_dir() or not (CAMVID_TEST / "masks").is_dir():
        pytest.skip(f"CamVid test split not found at {CAMVID_TEST} (RNS_SHARED=DIR: the folder with data/)")
    for mask_path in sorted((CAMVID_TEST / "masks").glob("*.png")):
        mask = np.asarray(Image.open(mask_path))
        if (mask == ROAD).mean() > 0.2 and (mask == CAR).mean() > 0.03:
            image = Image.open(CAMVID_TEST / "images" / (mask_path.stem + ".jpg")).convert("RGB")
            return image, mask
    pytest.skip(f"no CamVid test image in {CAMVID_TEST} shows enough road and car")


def _iou(pred: np.ndarray, truth: np.ndarray, valid: np.ndarray) -> float:
    inter = np.logical_and(pred, truth)[valid].sum()
    union = np.logical_or(pred, truth)[valid].sum()
    return float(inter / union) if union else 0.0


def test_zero_shot_road_and_car_on_a_real_photo():
    model, pretrained, checkpoint = real_weights_or_skip()
    image, mask = _photo_with_road_and_car()
    backbone = build_backbone(model, pretrained, checkpoint)
    feats = backbone.dense_features(image)  # [gh, gw, d]
    text = backbone.encode_text(["background", "road", "car"])
    logits = (100.0 * feats @ text.T).permute(2, 0, 1)[None]
    logits = F.interpolate(logits, size=mask.shape, mode="bilinear", align_corners=False)
    labels = logits[0].argmax(0).cpu().numpy()
    valid = mask != IGNORE
    scores = {"road": _iou(labels == 1, mask == ROAD, valid), "car": _iou(labels == 2, mask == CAR, valid)}
    print(f"{backbone!r}: IoU {scores}")
    for name, floor in MIN_IOU.items():
        assert scores[name] > floor, f"{name} IoU {scores[name]:.3f} <= {floor} ({backbone!r})"
    assert torch.isfinite(feats).all()
