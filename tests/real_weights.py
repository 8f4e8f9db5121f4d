"""Which real CLIP weights the real-weights tests use, or a skip that says why there are none.

Shared by tests in different folders (tests/backbone/, tests/), so it lives beside conftest.py and is
imported by bare name like the other helpers.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rns.backbone import DEFAULT_MODEL, DEFAULT_PRETRAINED, check_weights


def real_weights_or_skip() -> tuple[str, str | None, str | None]:
    """(model, pretrained, checkpoint) of usable real weights, or skip saying why there are none."""
    model = os.environ.get("RNS_MODEL") or DEFAULT_MODEL
    checkpoint = os.environ.get("RNS_CHECKPOINT")
    if checkpoint:
        if not Path(checkpoint).is_file():
            pytest.skip(f"RNS_CHECKPOINT={checkpoint} is not a file")
        return model, None, checkpoint
    pretrained = os.environ.get("RNS_PRETRAINED") or DEFAULT_PRETRAINED
    check = check_weights(model, pretrained, None)
    if not check.available_offline:
        pytest.skip(f"no real weights: {model} / {pretrained} {check.detail}")
    return model, pretrained, None
