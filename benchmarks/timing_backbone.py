"""The backbone for speed benchmarks: real weights when there are some, else the same architecture at random.

Compute time does not depend on the weights' values, so a randomly initialised ViT-B-16 times the backbone,
retrieval and head fit honestly (the number of retrieved rows can differ a little with real features);
every script prints which weights it used.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from camvid import DEFAULT_DATA

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


def timing_parser(doc: str | None) -> argparse.ArgumentParser:
    """The options every speed benchmark shares: where CamVid is and which backbone to time."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--model", default=None)
    parser.add_argument("--pretrained", default=None)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--device", default="auto")
    return parser


def open_timing_backbone(args: argparse.Namespace):
    """Build the backbone named by `timing_parser`'s options and print which weights are timed."""
    backbone, note = timing_backbone(args.model, args.pretrained, args.checkpoint, args.device)
    print(f"backbone: {backbone.spec.model} | weights: {backbone.weights_label} | device: {backbone.device}")
    if note:
        print(f"note: {note}")
    return backbone
