"""Shared test fixtures.

Tests never touch the model hub: HF_HUB_OFFLINE is set before anything imports huggingface_hub, so a test
that asks for real weights fails (or skips) in milliseconds instead of retrying the network for a minute.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Caches (text features, region proposals) go to a throw-away folder, never the user's home.
os.environ["RNS_CACHE"] = tempfile.mkdtemp(prefix="rns-test-cache-")

# Tests live in folders that mirror the packages (tests/memory/, tests/adapt/, ...) and import the shared
# helpers kept here (cli_runner, support_fakes, synthetic_images, reference_stages, mounts) by bare name,
# whatever folder they sit in. Test file names are unique across folders, as pytest's default import mode
# needs.
_TESTS = str(Path(__file__).resolve().parent)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_backbone():
    """The tiny randomly initialised test model (`rns-tiny-test`) on CPU, built through the real path.

    Shared by the whole session because building it costs about a second; it is frozen and its text
    cache only ever holds values it would compute again, so sharing cannot leak state between tests.
    Its features prove wiring and shapes, never accuracy.
    """
    from rns.backbone import DEFAULT_VARIANT, TINY_TEST_MODEL, build_backbone

    return build_backbone(TINY_TEST_MODEL, pretrained="random", variant=DEFAULT_VARIANT, device="cpu")


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a module's tests on one torch thread, restoring the previous count afterwards."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
