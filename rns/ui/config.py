"""Settings of one `rns ui` server, and the one place that maps a name onto a file of `--images`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from rns.errors import InputError
from rns.io.imageio import IMAGE_EXTENSIONS

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
# A phone photo is 3-12 MB; 25 MB leaves room for PNGs and TIFFs while keeping a stray upload harmless.
DEFAULT_MAX_UPLOAD_MB = 25
# 40 megapixels covers every camera photo; the decoded RGB is ~120 MB, the ceiling we accept per photo.
DEFAULT_MAX_PIXELS = 40_000_000
# Open photos whose features stay in memory (ViT-B-16 at 480x360: ~1.5 MB each; bigger photos more).
DEFAULT_OPEN_PHOTOS = 8
# ... and at most this many pixels among them: two 40 MP photos (a decoded 40 MP photo with its
# correction regions is ~300 MB), while a day's worth of phone photos still all stay open.
DEFAULT_OPEN_PIXELS = 2 * DEFAULT_MAX_PIXELS
# Photos decoded and run through the model at the same time; more requests wait their turn (their
# uploads stay spooled on disk), so 16 photos sent at once cost what 2 do.
DEFAULT_PHOTOS_IN_FLIGHT = 2


@dataclass(frozen=True)
class UiConfig:
    """Everything that shapes a server besides the model: paths, limits and the correction regions."""

    memory_path: str | os.PathLike | None = None
    images_dir: Path | None = None
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_MB * 1024 * 1024
    max_pixels: int = DEFAULT_MAX_PIXELS
    open_photos: int = DEFAULT_OPEN_PHOTOS
    open_pixels: int = DEFAULT_OPEN_PIXELS
    photos_in_flight: int = DEFAULT_PHOTOS_IN_FLIGHT
    sam_checkpoint: str | None = None

    def __post_init__(self) -> None:
        if self.images_dir is not None and not Path(self.images_dir).is_dir():
            raise InputError(f"--images {self.images_dir} is not a folder: give a folder of photos")
        limits = (self.max_upload_bytes, self.max_pixels, self.open_photos, self.open_pixels,
                  self.photos_in_flight)  # fmt: skip
        if min(limits) < 1:
            raise InputError("upload limit, pixel limits, open photos and photos in flight must be positive")


def printable_name(name: str) -> str:
    """A file name as text that can always be sent (bytes that are not UTF-8 shown as \\xNN escapes)."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def folder_listing(folder: Path) -> tuple[list[str], list[str]]:
    """The photos directly inside `folder` (sorted file names, what the page steps through), and a line
    for each photo left out because its name is not valid UTF-8 (it could not travel as JSON or a URL).
    """
    images, skipped = [], []
    for entry in Path(folder).iterdir():
        if entry.suffix.lower() not in IMAGE_EXTENSIONS or entry.is_symlink() or not entry.is_file():
            continue
        try:
            entry.name.encode("utf-8")
        except UnicodeEncodeError:
            skipped.append(f"{printable_name(entry.name)}: the file name is not valid UTF-8, so the page "
                           "cannot show it; rename the file")
            continue
        images.append(entry.name)
    return sorted(images), sorted(skipped)


def folder_images(folder: Path) -> list[str]:
    """File names of the photos directly inside `folder` that the page can show, sorted."""
    return folder_listing(folder)[0]


def resolve_folder_image(folder: Path, name: str) -> Path:
    """The file `name` of `folder`, refusing anything that is not one of its listed photos.

    Only a plain name that `folder_images` lists is accepted, so "../x", absolute paths, sub-folders and
    symbolic links (which could point outside) never reach the file system: no path traversal.
    """
    if not name or name != Path(name).name or name in (".", ".."):
        raise InputError(f"{name!r} is not a photo of the --images folder; pick one from its list")
    if name not in folder_images(folder):
        raise InputError(f"{name!r} is not a photo of the --images folder; pick one from its list")
    path = (Path(folder) / name).resolve()
    if path.parent != Path(folder).resolve():
        raise InputError(f"{name!r} is not a photo of the --images folder; pick one from its list")
    return path
