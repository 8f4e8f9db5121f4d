"""The photos open in the page, each with its dense features and correction regions computed once.

Why a cache: the backbone is the slow step (seconds for ViT-B-16 on a 480x360 photo on two CPU cores)
and a person typically segments, corrects, teaches and re-segments the same photo several times.
Features depend only on the photo and the backbone, not on the classes or the memory, so they are kept
while the photo is open: the test-time features (for segmenting) from the first segment, the support
features (the backbone's separate pass for examples) from the first teach; every later segment or teach
of the photo skips the backbone. A photo is identified
by the BLAKE2b hash of its file bytes, the same identity `rns add-support` gives a support image.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from rns.errors import InputError
from rns.io.imageio import bytes_content_hash, decode_image


def check_pixels(data: bytes, name: str, max_pixels: int) -> None:
    """Refuse a photo whose header declares more than `max_pixels`, before decoding it.

    Anything the header read cannot make sense of is left to `decode_image`, which names the problem.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            width, height = Image.open(io.BytesIO(data)).size
        except Image.DecompressionBombError:
            width, height = max_pixels + 1, 1
        except (UnidentifiedImageError, OSError, SyntaxError, EOFError, ValueError):
            return
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"image {name} is too large ({width}x{height} pixels, limit {max_pixels:,}): downscale it "
            "(or start rns ui with a larger --max-pixels)"
        )


def pixel_digest(image: Image.Image) -> str:
    """A hash of the decoded pixels and size: tells whether an image is the photo whose features we hold."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(repr((image.mode, image.size)).encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


@dataclass
class OpenPhoto:
    """One uploaded photo: its bytes (for teaching), decoded image, and lazily computed features/regions."""

    photo_id: str
    name: str
    data: bytes
    image: Image.Image
    digest: str
    features: torch.Tensor | None = None
    support: torch.Tensor | None = None
    regions: np.ndarray | None = None
    # One lock per cached item, so a segment never waits for the (slower) support pass running behind it.
    _feature_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _support_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _region_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _prefetch: threading.Thread | None = field(default=None, repr=False)

    @property
    def suffix(self) -> str:
        """The upload's file extension (kept so a taught photo's temporary file decodes the same way)."""
        dot = self.name.rfind(".")
        suffix = self.name[dot:].lower() if dot > 0 else ""
        return suffix if suffix.isascii() and len(suffix) <= 6 and suffix[1:].isalnum() else ".img"

    def dense_features(self, backbone: Any) -> tuple[torch.Tensor, bool]:
        """The photo's features, computed on first use; also says whether this call computed them."""
        with self._feature_lock:
            if self.features is not None:
                return self.features, False
            with torch.inference_mode():
                self.features = backbone.dense_features(self.image)
            return self.features, True

    def support_features(self, backbone: Any) -> tuple[torch.Tensor, bool]:
        """The photo's features as a support image (the backbone's own, multi-scale support pass),
        computed once (ahead of time by `prefetch_support`, or by the first teach) and kept."""
        with self._support_lock:
            if self.support is not None:
                return self.support, False
            with torch.inference_mode():
                self.support = backbone.support_features(self.image)
            return self.support, True

    def prefetch_support(self, backbone: Any, slots: threading.Semaphore | None = None) -> None:
        """Start computing the support features in a background thread, once per photo.

        The support pass costs several backbone passes (about 13 s for ViT-B-16 at 480x360 on two CPU
        cores); run while the person is still correcting, it is mostly done when they press Teach. A
        failure here is not reported: the teach computes the features again and reports its own error.
        It runs only when one of the server's `slots` for photo work is free (else the teach computes the
        features), so background passes never add to the bound on work in flight.
        """
        if self.support is not None or self._prefetch is not None:
            return

        def work() -> None:
            if slots is not None and not slots.acquire(blocking=False):
                return
            try:
                with contextlib.suppress(Exception):
                    self.support_features(backbone)
            finally:
                if slots is not None:
                    slots.release()

        name = f"rns-ui-support-{self.photo_id[:8]}"
        self._prefetch = threading.Thread(target=work, name=name, daemon=True)
        self._prefetch.start()

    def region_map(self, propose: Callable[[Image.Image], np.ndarray]) -> np.ndarray:
        """The correction regions (superpixels or SAM), computed on first use."""
        with self._region_lock:
            if self.regions is None:
                self.regions = np.asarray(propose(self.image), dtype=np.int32)
            return self.regions


class PhotoCache:
    """The last `capacity` photos opened, holding at most `open_pixels` pixels together (the photo just
    opened always stays), least recently used evicted first; safe across threads."""

    def __init__(self, capacity: int, max_pixels: int, open_pixels: int | None = None) -> None:
        self.capacity = capacity
        self.max_pixels = max_pixels
        self.open_pixels = open_pixels if open_pixels is not None else 2 * max_pixels
        self._photos: OrderedDict[str, OpenPhoto] = OrderedDict()
        self._lock = threading.Lock()

    def open(self, data: bytes, name: str) -> OpenPhoto:
        """The open photo with these bytes, decoding (and checking) them if it is not open yet."""
        photo_id = bytes_content_hash(data)
        with self._lock:
            photo = self._photos.get(photo_id)
            if photo is not None:
                self._photos.move_to_end(photo_id)
                return photo
        check_pixels(data, name, self.max_pixels)
        image = decode_image(data, name or "upload", max_pixels=self.max_pixels)
        photo = OpenPhoto(photo_id, name or "upload", data, image, pixel_digest(image))
        with self._lock:
            photo = self._photos.setdefault(photo_id, photo)
            self._photos.move_to_end(photo_id)
            while len(self._photos) > 1 and (len(self._photos) > self.capacity
                                             or self._pixels() > self.open_pixels):  # fmt: skip
                self._photos.popitem(last=False)
        return photo

    def get(self, photo_id: str) -> OpenPhoto:
        """An open photo by id; `InputError` when it was never opened or has been evicted since."""
        with self._lock:
            photo = self._photos.get(photo_id)
            if photo is None:
                raise PhotoNotOpenError(
                    f"photo {photo_id[:12]!r} is not open (closed to make room, or the server restarted): "
                    "upload the image again"
                )
            self._photos.move_to_end(photo_id)
            return photo

    def _pixels(self) -> int:
        return sum(photo.image.width * photo.image.height for photo in self._photos.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._photos)


class PhotoNotOpenError(InputError):
    """A request named a photo id the server no longer holds (the page then uploads the photo again)."""


class ImageTooLargeError(InputError):
    """A photo with more pixels than the server accepts (answered with 413)."""
