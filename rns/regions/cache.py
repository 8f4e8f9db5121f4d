"""On-disk cache of region maps, so an image is never proposed twice (SAM costs seconds to minutes on CPU).

Key: sha256 over the decoded image (size, mode and RGB bytes, so a re-saved file with identical pixels
hits and a re-encoded one that changed pixels misses), the proposer's name and its `settings_key()` (which
names the weights file for SAM). Entry: `<dir>/<key[:2]>/<key>.npz`, a compressed npz of the map stored in
the smallest unsigned dtype that holds its ids. Writes go through `rns.io.atomic` (a temporary file in the
same directory, fsynced and renamed into place), so a reader never sees half an entry; an entry that cannot
be read or does not fit the image is treated as missing and rewritten.
"""

from __future__ import annotations

import hashlib
import logging
import os
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from rns.io.atomic import atomic_write

log = logging.getLogger(__name__)


def image_digest(image: Image.Image) -> str:
    """Content hash of the decoded RGB pixels (not of the file: EXIF or container changes do not matter)."""
    rgb = image.convert("RGB")
    digest = hashlib.sha256(f"{rgb.width}x{rgb.height}:RGB:".encode())
    digest.update(rgb.tobytes())
    return digest.hexdigest()


class RegionCache:
    """A directory of cached region maps; safe for concurrent readers and writers (last rename wins)."""

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory).expanduser()

    def key(self, image: Image.Image, proposer_name: str, settings_key: str) -> str:
        digest = hashlib.sha256()
        for part in (image_digest(image), proposer_name, settings_key):
            digest.update(part.encode())
            digest.update(b"\0")
        return digest.hexdigest()

    def path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.npz"

    def load(self, key: str, size: tuple[int, int]) -> np.ndarray | None:
        """The cached int32 map for `key` if there is a readable one of `size` (height, width), else None."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                region_map = data["regions"]
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
            log.warning("ignoring unreadable region cache entry %s (%s); recomputing", path, error)
            return None
        if region_map.shape != tuple(size) or region_map.dtype.kind not in "iu":
            log.warning("ignoring region cache entry %s: it does not fit this image; recomputing", path)
            return None
        return region_map.astype(np.int32)

    def save(self, key: str, region_map: np.ndarray) -> None:
        """Store a map atomically. A cache that cannot be written is reported and skipped, never fatal."""
        path = self.path(key)
        top = int(region_map.max()) if region_map.size else 0
        dtype = np.uint8 if top < 2**8 else np.uint16 if top < 2**16 else np.uint32
        try:
            atomic_write(path, lambda stream: np.savez_compressed(stream, regions=region_map.astype(dtype)))
        except OSError as error:
            log.warning("could not write region cache entry %s (%s); continuing without it", path, error)
