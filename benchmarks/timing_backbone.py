"""The backbone for speed benchmarks: real weights when there are some, else the same architecture at random.

Compute time does not depend on the weights' values, so a randomly initialised ViT-B-16 times the backbone,
retrieval and head fit honestly (the number of retrieved rows can differ a little with real features);
every script prints which weights it used.
"""

from __future__ import annotations

from rns.backbone import build_backbone
from rns.errors import InputError, WeightsUnavailableError


def timing_backbone(model: str | None, pretrained: str | None, checkpoint: str | None, device: str):
    """Real weights if available; otherwise the same model with random weights, and a note saying so."""
    try:
        return build_backbone(model, pretrained, checkpoint, device=device), None
    except (WeightsUnavailableError, InputError) as error:
        note = (f"real weights unavailable ({error}); timing the same architecture with random weights, "
                "which costs the same compute")
        return build_backbone(model, "random", device=device), note
