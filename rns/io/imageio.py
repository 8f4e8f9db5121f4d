"""Reading photos and masks from disk, with one clear error for every way a file can be unusable.

`load_image` returns what the models expect whatever the file holds: an 8-bit RGB image, upright (the
EXIF orientation applied, as every photo viewer does), with transparency composited on white (the colour
most viewers and documents show behind a transparent image), and at most `max_pixels` pixels (a
decompression-bomb guard: a tiny file can declare a gigantic canvas). `load_mask` does the opposite:
it keeps the stored values exactly, because a mask's values are class ids, not colours.

Every failure (missing, empty, truncated, not an image, too large) is an `InputError` whose one-line
message names the file and what to do about it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import struct
import warnings
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISDIR, S_ISREG

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from rns.errors import InputError
from rns.paths import printable

# File extensions treated as images when a folder is scanned (compared lower-case).
IMAGE_EXTENSIONS: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp"})

# 100 megapixels: a 10000 x 10000 photo. Decoded as RGB that is 300 MB, before any model work.
DEFAULT_MAX_PIXELS = 100_000_000
# The largest file read as a photo or mask: far above any real one (a 40 MP 16-bit TIFF is 240 MB), low
# enough that a huge or endless file is refused instead of filling the memory.
MAX_IMAGE_FILE_BYTES = 1 << 30

# Transparent pixels are shown on white, as browsers and document viewers do.
TRANSPARENT_BACKGROUND = (255, 255, 255)

# What PIL raises for a damaged or unsupported file: OSError ("image file is truncated", decoder errors),
# SyntaxError (broken PNG chunks), EOFError, struct.error / zlib.error (garbled headers or streams),
# ValueError (impossible sizes or modes).
_DECODE_ERRORS = (OSError, SyntaxError, EOFError, ValueError, struct.error, zlib.error)

_HASH_CHUNK = 1 << 20


def read_image_file(path: str | os.PathLike, what: str = "image",
                    max_bytes: int = MAX_IMAGE_FILE_BYTES) -> tuple[os.stat_result, bytes]:
    """A photo's or mask's stat (taken before reading: a later change shows as a new mtime) and bytes.

    Opened without blocking and read only when it is a regular file of at most `max_bytes`: a FIFO, a
    device (`/dev/zero`) or a socket is refused at once instead of hanging or filling the memory.
    `what` ("image", "mask") names the file in the messages.
    """
    shown = printable(path)
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError as error:
        raise InputError(f"{what} {shown} does not exist: check the path") from error
    except IsADirectoryError as error:
        raise InputError(f"{what} {shown} is a folder, not a file: name {what} files inside it") from error
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise InputError(f"{what} {shown} cannot be read ({reason}): check its permissions") from error
    status = os.fstat(descriptor)
    if not S_ISREG(status.st_mode):
        os.close(descriptor)
        if S_ISDIR(status.st_mode):
            raise InputError(f"{what} {shown} is a folder, not a file: name {what} files inside it")
        raise InputError(f"{what} {shown} is not a regular file (a FIFO, device or socket): only "
                         f"{what} files are read")
    with os.fdopen(descriptor, "rb") as handle:
        if status.st_size > max_bytes:
            raise InputError(f"{what} {shown} is {status.st_size:,} bytes, over the {max_bytes:,} rns reads "
                             f"for one {what}: downscale or compress it")
        try:
            data = handle.read(max_bytes + 1)
        except OSError as error:
            reason = error.strerror or type(error).__name__
            raise InputError(f"{what} {shown} cannot be read ({reason}): check the file") from error
    if len(data) > max_bytes:  # grew while being read
        raise InputError(f"{what} {shown} is over the {max_bytes:,} bytes rns reads for one {what}: "
                         "downscale it")
    return status, data


def _read_file(path: Path, what: str) -> bytes:
    """The file's bytes (`read_image_file`), or an InputError saying why there are none."""
    data = read_image_file(path, what)[1]
    if not data:
        raise InputError(f"{what} {path} is empty (0 bytes): replace it with a complete {what} file")
    return data


def _open(data: bytes, path: Path, what: str, max_pixels: int | None) -> Image.Image:
    """Open and fully decode an image from bytes, enforcing the pixel limit before decoding."""
    with warnings.catch_warnings():
        # PIL warns above its own limit; we apply ours (and say so) instead.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError as error:
            raise InputError(_too_large(path, what, None, max_pixels)) from error
        except UnidentifiedImageError as error:
            raise InputError(
                f"{what} {path} is not an image PIL can read: use JPEG, PNG, WebP, TIFF or BMP"
            ) from error
        except _DECODE_ERRORS as error:
            raise InputError(f"{what} {path} is damaged ({error}): re-export or re-download it") from error
        width, height = image.size
        if max_pixels is not None and width * height > max_pixels:
            raise InputError(_too_large(path, what, (width, height), max_pixels))
        try:
            image.load()
        except _DECODE_ERRORS as error:
            raise InputError(
                f"{what} {path} is damaged or truncated ({error}): re-export or re-download it"
            ) from error
    return image


@dataclass(frozen=True)
class ImageHeader:
    """What an image file's header says, read without decoding a pixel: stored size, format, orientation."""

    width: int
    height: int
    format: str | None
    orientation: int = 1

    @property
    def upright_size(self) -> tuple[int, int]:
        """(width, height) once the EXIF orientation is applied, as `load_image` returns it."""
        return (self.height, self.width) if self.orientation in (5, 6, 7, 8) else (self.width, self.height)


def read_image_header(
    source: str | os.PathLike | bytes,
    name: str | os.PathLike | None = None,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    what: str = "image",
) -> ImageHeader:
    """The header of an image file (or of encoded bytes), its pixel count checked before anything decodes.

    Readers that only need an image's size (label imports checking that annotations fit their image) call
    this instead of `load_image`, so a small file declaring a gigantic canvas costs a header read and one
    line, never a decompression. `name` names the bytes in messages (default: the path). Raises
    `InputError` naming the file and the limit.
    """
    shown = Path(name if name is not None else ("<bytes>" if isinstance(source, bytes) else source))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            opened = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
        except Image.DecompressionBombError:
            bomb = _header_too_large(shown, what, "more pixels than PIL's safety limit", max_pixels)
            raise InputError(bomb) from None
        except UnidentifiedImageError:
            raise InputError(
                f"{what} {shown} is not an image PIL can read: use JPEG, PNG, WebP, TIFF or BMP"
            ) from None
        except _DECODE_ERRORS as error:
            reason = getattr(error, "strerror", None) or error
            raise InputError(f"{what} {shown} cannot be read ({reason})") from None
        with opened as image:
            width, height = image.size
            if max_pixels is not None and width * height > max_pixels:
                raise InputError(_header_too_large(shown, what, f"{width}x{height} pixels", max_pixels))
            orientation = 1
            with contextlib.suppress(*_DECODE_ERRORS):  # an unreadable EXIF block only costs the rotation
                orientation = int(image.getexif().get(0x0112, 1))
            return ImageHeader(width=width, height=height, format=image.format, orientation=orientation)


def _header_too_large(path: Path, what: str, shown: str, max_pixels: int | None) -> str:
    limit = f"{max_pixels:,} pixels" if max_pixels else "PIL's"
    return f"{what} {path} is too large ({shown}, limit {limit}): downscale it"


def _too_large(path: Path, what: str, size: tuple[int, int] | None, max_pixels: int | None) -> str:
    shown = f"{size[0]}x{size[1]} pixels" if size else "too many pixels for PIL's safety limit"
    limit = f"{max_pixels:,}" if max_pixels else "PIL's"
    return (
        f"{what} {path} is too large ({shown}, limit {limit}): downscale it or raise the limit "
        "(max_pixels / --max-pixels)"
    )


def _lift_pil_limit(max_pixels: int | None) -> None:
    """Let PIL open images up to our own limit: PIL refuses anything over twice its MAX_IMAGE_PIXELS.

    PIL's guard is process-wide, so it is only ever raised, and only when a caller asks for more than PIL
    would open (the default limit is below PIL's); our own check still applies.
    """
    current = Image.MAX_IMAGE_PIXELS
    if current is None:
        return
    if max_pixels is None:
        Image.MAX_IMAGE_PIXELS = None
    elif max_pixels > 2 * current:
        Image.MAX_IMAGE_PIXELS = max_pixels


def _to_8bit_grey(image: Image.Image) -> Image.Image:
    """16-bit, 32-bit integer and float single-channel images mapped onto 0..255.

    16-bit data (PIL modes I;16*, and mode I holding values <= 65535) is divided by 257, the exact
    0..65535 -> 0..255 mapping. Float data in 0..1 is scaled by 255. Anything else (wider integers,
    floats beyond 1) is stretched from its minimum to its maximum, since no fixed range applies.
    """
    values = np.asarray(image, dtype=np.float64)
    if image.mode.startswith("I;16"):
        scaled = values / 257.0
    elif image.mode == "F" and values.size and values.min() >= 0.0 and values.max() <= 1.0:
        scaled = values * 255.0
    elif image.mode == "I" and values.size and values.min() >= 0 and values.max() <= 65535:
        scaled = values / 257.0
    else:
        low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
        scaled = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8))


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode == "P" and "transparency" in image.info
    )


def _to_rgb(image: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    """Any PIL mode to 8-bit RGB; transparency is composited on `background`."""
    if image.mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        image = _to_8bit_grey(image)
    if _has_alpha(image):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (*background, 255))
        canvas.alpha_composite(rgba)
        return canvas.convert("RGB")
    if image.mode != "RGB":
        # L, 1, P, CMYK, YCbCr, LAB, HSV: PIL's own conversions.
        image = image.convert("RGB")
    return image


def load_image(
    path: str | os.PathLike,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    background: tuple[int, int, int] = TRANSPARENT_BACKGROUND,
) -> Image.Image:
    """Load a photo as an upright 8-bit RGB PIL image.

    Handles JPEG, PNG, WebP, TIFF and BMP in 8/16-bit, greyscale, palette, RGBA/LA (composited on
    `background`, white by default) and CMYK. Multi-frame files give their first frame. `max_pixels=None`
    disables the size guard. Raises `InputError` naming the file for anything unusable.
    """
    return decode_image(_read_file(Path(path), "image"), path, max_pixels=max_pixels, background=background)


def decode_image(
    data: bytes,
    path: str | os.PathLike,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    background: tuple[int, int, int] = TRANSPARENT_BACKGROUND,
) -> Image.Image:
    """`load_image` for bytes already read (the runner reads once to both hash and decode).

    `path` only names the file in error messages.
    """
    path = Path(path)
    if not data:
        raise InputError(f"image {path} is empty (0 bytes): replace it with a complete image file")
    _lift_pil_limit(max_pixels)
    image = _open(data, path, "image", max_pixels)
    # An unreadable EXIF block only costs us the rotation, not the image.
    with contextlib.suppress(*_DECODE_ERRORS):
        image = ImageOps.exif_transpose(image)
    rgb = _to_rgb(image, background)
    rgb.info.pop("exif", None)
    return rgb


def load_mask(
    path: str | os.PathLike,
    *,
    colours: Mapping[tuple[int, int, int], int] | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """Load a label mask as an `[H, W]` integer array of the values stored in the file.

    - palette ("P") PNGs give their palette *indices* (the class ids), never the colours;
    - greyscale ("L") gives its values, 1-bit gives 0/1 (both uint8); 16/32-bit integer masks give int32;
    - RGB(A) masks whose three channels are equal everywhere are greyscale saved as RGB: the value is kept;
    - other RGB(A) masks are colour-coded; they need `colours` ({(r, g, b): id}) to say which colour is which
      id, and every colour in the mask must be listed. Alpha channels are ignored.
    The EXIF orientation is applied, as for the photo, so mask and photo stay aligned.
    """
    path = Path(path)
    data = _read_file(path, "mask")
    _lift_pil_limit(max_pixels)
    image = _open(data, path, "mask", max_pixels)
    with contextlib.suppress(*_DECODE_ERRORS):
        image = ImageOps.exif_transpose(image)
    mode = image.mode
    if mode in ("P", "L"):
        return np.asarray(image, dtype=np.uint8).copy()
    if mode == "1":
        return np.asarray(image, dtype=np.uint8).copy()
    if mode in ("I", "I;16", "I;16L", "I;16B", "I;16N"):
        return np.asarray(image).astype(np.int32)
    if mode in ("LA", "PA"):
        return np.asarray(image.getchannel(0), dtype=np.uint8).copy()
    if mode in ("RGB", "RGBA"):
        return _colour_mask(np.asarray(image.convert("RGB"), dtype=np.uint8), path, colours)
    raise InputError(
        f"mask {path} has pixel mode {mode}, which holds no class ids: save it as a palette or greyscale PNG"
    )


def _colour_mask(
    rgb: np.ndarray, path: Path, colours: Mapping[tuple[int, int, int], int] | None
) -> np.ndarray:
    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    if np.array_equal(red, green) and np.array_equal(green, blue):
        return red.copy()
    if not colours:
        raise InputError(
            f"mask {path} is a colour (RGB) image, so its class ids are ambiguous: save it as a greyscale "
            "or palette PNG whose pixel values are the class ids (0/1 or 0/255 for --class NAME; 0, 1, "
            "2, ... named by --labels or --classes-file)"
        )
    packed = (red.astype(np.int64) << 16) | (green.astype(np.int64) << 8) | blue.astype(np.int64)
    keys = np.array([(r << 16) | (g << 8) | b for (r, g, b) in colours], dtype=np.int64)
    ids = np.array(list(colours.values()), dtype=np.int64)
    order = np.argsort(keys)
    keys, ids = keys[order], ids[order]
    position = np.clip(np.searchsorted(keys, packed), 0, len(keys) - 1)
    known = keys[position] == packed
    if not known.all():
        y, x = np.argwhere(~known)[0]
        raise InputError(
            f"mask {path} has colour {tuple(int(v) for v in rgb[y, x])} at pixel (x={x}, y={y}) that is "
            "not in the colour-to-id table: add it to the table or fix the mask"
        )
    return ids[position].astype(np.int32)


def image_content_hash(path: str | os.PathLike) -> str:
    """A hex digest of the file's bytes (BLAKE2b, 128-bit), read in 1 MiB chunks.

    Identifies an image by content, so a copied or touched file is still recognised as unchanged.
    """
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def bytes_content_hash(data: bytes) -> str:
    """`image_content_hash` of bytes already in memory (same digest as for the file)."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()
