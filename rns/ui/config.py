"""Settings of one `rns ui` server, and the one place that maps a name onto a file of `--images`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from rns.errors import InputError
from rns.imageio import IMAGE_EXTENSIONS

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
# A phone photo is 3-12 MB; 25 MB leaves room for PNGs and TIFFs while keeping a stray upload harmless.
DEFAULT_MAX_UPLOAD_MB = 25
# 40 megapixels covers every camera photo; the decoded RGB is ~120 MB, the ceiling we accept per photo.
DEFAULT_MAX_PIXELS = 40_000_000
# Open photos whose features stay in memory (ViT-B-16 at 480x360: ~1.5 MB each; bigger photos more).
DEFAULT_OPEN_PHOTOS = 8


@dataclass(frozen=True)
class UiConfig:
    """Everything that shapes a server besides the model: paths, limits and the correction regions."""

    memory_path: str | os.PathLike | None = None
    images_dir: Path | None = None
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_MB * 1024 * 1024
    max_pixels: int = DEFAULT_MAX_PIXELS
    open_photos: int = DEFAULT_OPEN_PHOTOS
    sam_checkpoint: str | None = None

    def __post_init__(self) -> None:
        if self.images_dir is not None and not Path(self.images_dir).is_dir():
            raise InputError(f"--images {self.images_dir} is not a folder: give a folder of photos")
        if self.max_upload_bytes < 1 or self.max_pixels < 1 or self.open_photos < 1:
            raise InputError("upload limit, pixel limit and open photos must be positive")


def folder_images(folder: Path) -> list[str]:
    """File names of the photos directly inside `folder`, sorted (what the page steps through)."""
    return sorted(
        entry.name
        for entry in Path(folder).iterdir()
        if entry.is_file() and not entry.is_symlink() and entry.suffix.lower() in IMAGE_EXTENSIONS
    )


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
