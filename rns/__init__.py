"""rns: Retrieve and Segment, test-time adaptive open-vocabulary semantic segmentation.

The Python API that the `rns` command wraps:

    from rns import build_segmenter, save_segmentation, load_image

    segmenter = build_segmenter("bus,car")          # default model; the support memory if there is one
    image = load_image("photo.jpg")
    seg = segmenter.segment(image)                   # seg.labels [H, W], seg.class_names, seg.fractions()
    save_segmentation(seg, image, "out", "photo")    # labels PNG, overlay PNG, summary JSON

Names are imported on first use, so `import rns` stays cheap.
"""

from __future__ import annotations

from importlib import import_module

from rns.errors import InputError, RnsError, WeightsUnavailableError

__version__ = "0.1.0"

_LAZY = {
    "build_backbone": "rns.backbone",
    "ClipBackbone": "rns.backbone",
    "build_segmenter": "rns.segment.pipeline",
    "Segmenter": "rns.segment.pipeline",
    "SegmentOptions": "rns.segment.pipeline",
    "Segmentation": "rns.segmentation",
    "AdaptConfig": "rns.adapt",
    "load_image": "rns.io.imageio",
    "save_segmentation": "rns.io.outputs",
    "add_supports": "rns.teach.support",
    "LabelMapping": "rns.teach.mask_conventions",
    "run_folder": "rns.run.runner",
    "SupportMemory": "support_memory",
}

__all__ = ["RnsError", "InputError", "WeightsUnavailableError", *_LAZY]


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'rns' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value

