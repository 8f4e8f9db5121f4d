"""Turning what the user typed (files, folders, list files) into an ordered list of images to segment.

Accepted sources, freely mixed:
- an image file: taken as is, whatever its extension (the loader reports a non-image);
- a folder: every file matching `glob` below it (default `**/*`: recursive) whose extension is an image
  extension; files and folders whose name starts with "." are left out, and so is the output folder when it
  lies inside the input folder (so a rerun never segments its own overlays);
- `@list.txt`: a text file naming one path per line (files or folders); blank lines and lines starting with
  "#" are ignored, relative paths are relative to the list file's folder. A listed path that does not exist
  is kept as an image, so the run reports it as failed and goes on (a missing path typed on the command
  line is still an error at once).

Every image gets an output *stem* (a relative path without extension) that mirrors where it came from:
a folder's images keep their subfolders (`in/a/x.jpg` -> `a/x`), loose files are placed relative to
their common parent folder; with several sources (two folders, or a folder and loose files), stems are
relative to the sources' common parent (`one/x`, `two/x`). Stems that would still collide (`x.jpg` and
`x.png`, or names differing only in case, which collide on macOS and Windows) get the extension appended
(`x_jpg`), then a short hash of the full path. The list is sorted by stem, so order and names are stable
from run to run, which is what resume relies on.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from rns.errors import InputError
from rns.io.imageio import IMAGE_EXTENSIONS
from rns.paths import printable

DEFAULT_GLOB = "**/*"
LIST_PREFIX = "@"
MAX_LIST_FILE_BYTES = 64 << 20  # a million paths


@dataclass(frozen=True)
class InputImage:
    """One image to segment: where it is, and the stem its outputs are named by (POSIX, no extension)."""

    path: Path
    stem: str
    problem: str | None = None  # why it cannot be used (the run reports it as failed without reading it)


@dataclass(frozen=True)
class _Found:
    path: Path
    root: Path | None  # the folder source it was found under; None for a loose file
    problem: str | None = None


# Outputs of a run that are images themselves (see `rns.io.outputs.SUFFIXES`), never taken as inputs when the
# output folder is also an input folder.
_OUTPUT_IMAGE_SUFFIXES = (".labels.png", ".overlay.png")
_EXPORT_FOLDER = "yolo"  # `--export yolo` copies the photos into OUT/yolo/images (rns.formats.run_export)


def expand_inputs(
    sources: Sequence[str | os.PathLike],
    *,
    glob: str = DEFAULT_GLOB,
    list_files: Sequence[str | os.PathLike] = (),
    extensions: Iterable[str] = IMAGE_EXTENSIONS,
    exclude: Sequence[str | os.PathLike] = (),
) -> list[InputImage]:
    """Expand files, folders and list files into images with unique output stems, sorted by stem.

    `list_files` are read like `@file` sources. `exclude` names folders never to scan (the output folder).
    Raises `InputError` for a missing path, a folder without matching images, or an empty overall result.
    """
    suffixes = frozenset(ext.lower() if ext.startswith(".") else f".{ext.lower()}" for ext in extensions)
    excluded = [Path(path).resolve() for path in exclude]
    found: list[_Found] = []
    texts = [str(os.fspath(source)) for source in sources]
    texts += [f"{LIST_PREFIX}{os.fspath(path)}" for path in list_files]
    for text in texts:
        # "@name" is a list file, unless a file literally named "@name" exists.
        if text.startswith(LIST_PREFIX) and not Path(text).exists():
            found.extend(_from_list_file(Path(text[len(LIST_PREFIX) :]), glob, suffixes, excluded))
        else:
            found.extend(_from_path(Path(text), glob, suffixes, excluded, context=""))
    if not found:
        raise InputError("no input images given: name image files, folders or @list.txt files")
    return _assign_stems(_unique(found))


def _from_path(
    path: Path, glob: str, suffixes: frozenset[str], excluded: list[Path], *, context: str
) -> list[_Found]:
    if not path.exists():
        if path.is_symlink():
            return [_Found(path, None, f"image {printable(path)} is a broken link: fix or remove it")]
        raise InputError(f"input {path}{context} does not exist: check the path")
    if path.is_dir():
        images = _scan_folder(path, glob, suffixes, excluded)
        if not images and excluded and _is_under(path.resolve(), excluded):
            return []  # the output folder holding only outputs, e.g. from `in/*` after a run into in/out
        if not images:
            shown = ", ".join(sorted(suffixes))
            raise InputError(
                f"folder {path}{context} holds no images matching {glob!r} ({shown}): "
                "check the folder or the --glob pattern"
            )
        return images
    if excluded and _is_output(path, excluded):
        return []
    return [_Found(path, None, _not_a_regular_file(path))]


def _scan_folder(folder: Path, glob: str, suffixes: frozenset[str], excluded: list[Path]) -> list[_Found]:
    root = folder.resolve()
    inside = [path for path in excluded if path != root and path.is_relative_to(root)]
    images = []
    for candidate in folder.glob(glob):
        relative = candidate.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if candidate.suffix.lower() not in suffixes:
            continue
        if (inside and _is_under(root / relative, inside)) or (excluded and _is_output(candidate, excluded)):
            continue
        if candidate.is_dir():  # a folder named like an image (or a link to one): nothing to read
            continue
        images.append(_Found(candidate, folder, _unusable_in_folder(candidate, root)))
    return images


def _unusable_in_folder(candidate: Path, root: Path) -> str | None:
    """Why a file found in a folder cannot be read, or None when it can."""
    shown = printable(candidate)
    try:
        resolved = candidate.resolve()
    except (OSError, RuntimeError):  # a link loop
        return f"image {shown} is a link that leads nowhere (a loop): fix or remove it"
    if not resolved.is_relative_to(root):
        return (f"image {shown} is a link leading out of the input folder: a folder run reads only "
                "inside the folders it is given; copy the file in, or name it directly")
    try:
        mode = candidate.stat().st_mode
    except OSError:
        return f"image {shown} is a broken link: fix or remove it"
    return _not_a_regular_file(candidate, mode)


def _not_a_regular_file(path: Path, mode: int | None = None) -> str | None:
    """A one-line problem for a FIFO, device or socket (reading one can block or never end), else None."""
    try:
        mode = path.stat().st_mode if mode is None else mode
    except OSError:
        return None  # vanished: the run reports it when it reads it
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    kind = "a FIFO" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) \
        else "a socket" if stat.S_ISSOCK(mode) else "a special file"
    return f"image {printable(path)} is {kind}, not a regular file: only image files are read"


def _is_output(path: Path, out_folders: list[Path]) -> bool:
    """Whether `path` is an image a run into one of `out_folders` wrote (`<stem>.labels.png`, ...)."""
    resolved = path.resolve()
    if _is_under(resolved, [folder / _EXPORT_FOLDER for folder in out_folders]):
        return True
    return path.name.lower().endswith(_OUTPUT_IMAGE_SUFFIXES) and _is_under(resolved, out_folders)


def _is_under(path: Path, folders: list[Path]) -> bool:
    return any(path == folder or path.is_relative_to(folder) for folder in folders)


def _from_list_file(
    list_file: Path, glob: str, suffixes: frozenset[str], excluded: list[Path]
) -> list[_Found]:
    if not list_file.exists():
        raise InputError(f"list file {list_file} does not exist: check the path after '{LIST_PREFIX}'")
    if not list_file.is_file():  # a folder, FIFO or device: reading it could block or never end
        raise InputError(f"list file {printable(list_file)} is not a regular file: name a text file with "
                         "one image path per line")
    if list_file.stat().st_size > MAX_LIST_FILE_BYTES:
        raise InputError(f"list file {printable(list_file)} is over {MAX_LIST_FILE_BYTES >> 20} MB: split "
                         "it, or name the folders instead")
    try:
        lines = list_file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(
            f"list file {printable(list_file)} cannot be read as UTF-8 text ({error}): fix or recreate it"
        ) from error
    found: list[_Found] = []
    for number, line in enumerate(lines, start=1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        path = Path(entry).expanduser()
        if not path.is_absolute():
            path = list_file.parent / path
        if not path.exists() and not path.is_symlink():
            # One stale line must not refuse a long list: the path is reported as failed, like a
            # corrupt image, and the run goes on (the runner reports "does not exist").
            found.append(_Found(path, None))
            continue
        found.extend(_from_path(path, glob, suffixes, excluded, context=f" (line {number} of {list_file})"))
    if not found:
        raise InputError(f"list file {list_file} names no images: put one image path per line")
    return found


def _unique(found: list[_Found]) -> list[_Found]:
    """Drop repeats of the same file (named twice, or in two overlapping sources); first one wins."""
    seen: set[Path] = set()
    unique = []
    for item in found:
        key = _resolved(item.path)
        if key not in seen:
            seen.add(key)
            unique.append(item)
    return unique


def _assign_stems(found: list[_Found]) -> list[InputImage]:
    loose = [item.path for item in found if item.root is None]
    loose_root = _common_parent(loose) if loose else None
    roots = {_resolved(item.root or loose_root) for item in found}  # type: ignore[arg-type]
    # One source: stems relative to it. Several: relative to their common parent, so "one/x" and "two/x".
    shared_base = Path(os.path.commonpath([str(root) for root in roots])) if len(roots) > 1 else None
    stems: dict[Path, str] = {}
    problems = {item.path: item.problem for item in found if item.problem}
    for item in found:
        base = shared_base or _resolved(item.root or loose_root)  # type: ignore[arg-type]
        relative = PurePosixPath(*_location(item).relative_to(base).parts)
        stem = str(relative.with_suffix(""))
        if not _is_utf8(stem) and item.path not in problems:
            problems[item.path] = (f"image {printable(item.path)}: the file name is not valid UTF-8, so its "
                                   "outputs could not be named: rename the file")  # fmt: skip
        stems[item.path] = stem if _is_utf8(stem) else printable(stem)
    stems = _resolve_collisions(stems, lambda path, stem: f"{stem}_{path.suffix.lstrip('.').lower()}")
    stems = _resolve_collisions(stems, lambda path, stem: f"{stem}_{_short_hash(path)}")
    images = (InputImage(path, stem, problems.get(path)) for path, stem in stems.items())
    return sorted(images, key=lambda image: image.stem)


def _location(item: _Found) -> Path:
    """Where a found file is, for its stem: resolved, except a refused link (named by where it lies)."""
    if item.problem and item.root is not None:
        return _resolved(item.root) / item.path.relative_to(item.root)
    return _resolved(item.path)


def _resolved(path: Path) -> Path:
    """`path.resolve()`, or its absolute form for a link loop (which `resolve` refuses)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return Path(os.path.abspath(path))


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _common_parent(paths: list[Path]) -> Path:
    return Path(os.path.commonpath([str(_resolved(path).parent) for path in paths]))


def _resolve_collisions(stems: dict[Path, str], rename: Callable[[Path, str], str]) -> dict[Path, str]:
    """Rename every stem that collides (case-insensitively) with another one."""
    groups: dict[str, list[Path]] = defaultdict(list)
    for path, stem in stems.items():
        groups[stem.casefold()].append(path)
    renamed = dict(stems)
    for paths in groups.values():
        if len(paths) > 1:
            for path in paths:
                renamed[path] = rename(path, stems[path])
    return renamed


def _short_hash(path: Path) -> str:
    return hashlib.blake2b(os.fsencode(_resolved(path)), digest_size=4).hexdigest()
