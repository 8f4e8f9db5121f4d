"""The optional libraries of the format readers and writers, imported on first use.

pycocotools, OpenCV and the Label Studio SDK are heavy and only needed by people who exchange labels with
other tools, so they live in the `formats` extra rather than in rns's core dependencies. Importing them
here, lazily, turns a missing one into one line that names the extra instead of a traceback.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from rns.errors import RnsError

EXTRA_INSTALL = "pip install 'rns[formats]'"


class MissingExtraError(RnsError):
    """A library of the `formats` extra is not installed."""


def _require(module: str, package: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtraError(
            f"reading and writing other tools' label formats needs {package}, which is not installed: "
            f"run {EXTRA_INSTALL}"
        ) from None


def pycocotools_mask() -> ModuleType:
    """`pycocotools.mask`: COCO RLE encoding, decoding and polygon rasterising."""
    return _require("pycocotools.mask", "pycocotools")


def cv2() -> ModuleType:
    """OpenCV: connected components, contours (mask to polygon) and polygon filling."""
    return _require("cv2", "opencv-python-headless")


def label_studio_brush() -> ModuleType:
    """Label Studio's converter module that decodes its brush RLE."""
    return _require("label_studio_sdk.converter.brush", "label-studio-sdk")


def yaml() -> ModuleType:
    """PyYAML, for YOLO's data.yaml."""
    return _require("yaml", "pyyaml")
