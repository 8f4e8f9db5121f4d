"""Bytes in and out of the API: class lists, label and region PNGs (base64), uploaded masks.

Label maps travel as 8-bit greyscale PNGs (the pixel value is the class id), which any tool can decode
without knowing rns. Region maps can hold more than 256 ids, so they travel as RGB PNGs with the id in
24 bits (red + 256 * green + 65536 * blue); only the page reads them.
"""

from __future__ import annotations

import base64
import io
import struct
import warnings
import zlib

import numpy as np
from PIL import Image, UnidentifiedImageError

from rns.errors import InputError
from rns.segment.requested_classes import parse_class_list

_DECODE_ERRORS = (OSError, SyntaxError, EOFError, ValueError, struct.error, zlib.error)


def parse_classes(text: str | None) -> list[str]:
    """A comma-separated class list as typed in the page (empty: the memory's classes)."""
    if text is None or not text.strip():
        return []
    return parse_class_list(text)


def png_base64(image: Image.Image) -> str:
    """A PIL image as base64 PNG text, compressed fast (label maps are mostly flat areas)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def labels_png_base64(labels: np.ndarray) -> str:
    """Class ids `[H, W]` (< 256) as a base64 8-bit greyscale PNG."""
    if labels.size and int(labels.max()) > 255:
        raise ValueError("more than 256 classes cannot be sent as an 8-bit PNG")
    return png_base64(Image.fromarray(labels.astype(np.uint8), mode="L"))


def regions_png_base64(region_map: np.ndarray) -> str:
    """Region ids `[H, W]` as a base64 RGB PNG, id = r + 256 g + 65536 b."""
    ids = region_map.astype(np.uint32)
    rgb = np.stack([ids & 0xFF, (ids >> 8) & 0xFF, (ids >> 16) & 0xFF], axis=-1).astype(np.uint8)
    return png_base64(Image.fromarray(rgb, mode="RGB"))


def decode_mask(data: bytes, max_pixels: int) -> np.ndarray:
    """An uploaded mask PNG as class ids `[H, W]`: greyscale or palette values (palette indices, not
    colours), or an RGB(A) image whose channels are equal; anything else is refused with the reason."""
    if not data:
        raise InputError("the mask upload is empty: send a PNG of class ids")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
            if image.width * image.height > max_pixels:
                raise InputError(
                    f"the mask is too large ({image.width}x{image.height} pixels, limit {max_pixels:,})"
                )
            image.load()
        except (UnidentifiedImageError, Image.DecompressionBombError, *_DECODE_ERRORS) as error:
            raise InputError(
                f"the mask is not a readable image ({type(error).__name__}): send a PNG of class ids"
            ) from None
    if image.mode in ("L", "P", "1"):
        return np.asarray(image, dtype=np.uint8).copy()
    if image.mode in ("I", "I;16", "I;16L", "I;16B"):
        values = np.asarray(image).astype(np.int64)
        return values
    if image.mode in ("LA", "PA"):
        return np.asarray(image.getchannel(0), dtype=np.uint8).copy()
    if image.mode in ("RGB", "RGBA"):
        rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
        if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2]):
            return rgb[..., 0].copy()
        raise InputError(
            "the mask is a colour image: send a greyscale or palette PNG whose values are class ids"
        )
    raise InputError(f"the mask has pixel mode {image.mode}, which holds no class ids: send a greyscale PNG")
