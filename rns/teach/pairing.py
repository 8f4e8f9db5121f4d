"""Pairing support images with their masks by file name: `a.jpg` in the images folder with `a.png` in masks.

Shared by teaching (`rns add-support --images DIR --masks DIR`), evaluating a labelled folder and the
dataset imports. Kept apart from `rns.teach.support` so that pairing (and its one-line errors) needs no
torch, and so that a folder's links out of it are refused in one place.
"""

from __future__ import annotations

import os
from pathlib import Path

from rns.errors import InputError
from rns.formats.confine import OUTSIDE_LINK, Confinement
from rns.io.imageio import IMAGE_EXTENSIONS

__all__ = ["pair_by_stem"]

_MAX_LISTED_FILES = 5


def _files_by_stem(folder: Path, what: str, refused: list[Path] | None = None) -> dict[str, Path]:
    if not folder.is_dir():
        raise InputError(f"{what} folder {folder} does not exist or is not a folder: check the path")
    by_stem: dict[str, Path] = {}
    inside = Confinement([folder])
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        if not inside.contains(path):  # a link out of the folder: never read
            if refused is None:
                raise InputError(f"{what} folder {folder}: {path.name} {OUTSIDE_LINK}")
            refused.append(path)
            continue
        if not path.is_file():
            continue
        if path.stem in by_stem:
            raise InputError(
                f"{what} folder {folder} has two files named {path.stem!r} ({by_stem[path.stem].name}, "
                f"{path.name}): keep one, since images and masks are paired by file name"
            )
        by_stem[path.stem] = path
    if not by_stem and not refused:
        extensions = ", ".join(sorted(IMAGE_EXTENSIONS))
        raise InputError(f"{what} folder {folder} holds no image files ({extensions})")
    return by_stem


def _listed_files(stems: list[str], folder: Path) -> str:
    shown = ", ".join(stems[:_MAX_LISTED_FILES])
    more = f" and {len(stems) - _MAX_LISTED_FILES} more" if len(stems) > _MAX_LISTED_FILES else ""
    return f"{len(stems)} in {folder} ({shown}{more})"


def pair_by_stem(images_dir: str | os.PathLike, masks_dir: str | os.PathLike, *,
                 refused: list[Path] | None = None) -> list[tuple[Path, Path]]:
    """Pair every image in `images_dir` with the mask of the same file stem in `masks_dir`.

    `a.jpg` pairs with `a.png`. Only the folders' top level is read. A file with no partner is an
    error rather than skipped: a silently dropped example is a class silently weaker than intended.
    A link to a file outside its folder is never read: an `InputError`, or, when `refused` is given (an
    import, which reports bad items and adds the rest), listed there with its partner left out.
    """
    images_dir, masks_dir = Path(images_dir), Path(masks_dir)
    images = _files_by_stem(images_dir, "images", refused)
    masks = _files_by_stem(masks_dir, "masks", refused)
    for path in refused or []:
        images.pop(path.stem, None)
        masks.pop(path.stem, None)
    lonely_images = sorted(set(images) - set(masks))
    lonely_masks = sorted(set(masks) - set(images))
    if lonely_images or lonely_masks:
        problems = []
        if lonely_images:
            problems.append(f"images with no mask: {_listed_files(lonely_images, images_dir)}")
        if lonely_masks:
            problems.append(f"masks with no image: {_listed_files(lonely_masks, masks_dir)}")
        raise InputError(
            "; ".join(problems) + "; images and masks pair by file name (a.jpg with a.png): "
            "add or remove files so that every one has its partner"
        )
    return [(images[stem], masks[stem]) for stem in sorted(images)]
