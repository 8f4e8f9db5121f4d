"""YOLO segmentation datasets (the Ultralytics layout): write label maps as one, read one back.

Layout, as a YOLO trainer reads it with no changes:

    data.yaml            names of the classes (index -> name); train and val point at images/
    images/NAME.jpg      the photos (hard links where the filesystem allows, else copies)
    labels/NAME.txt      one line per instance: "class x1 y1 x2 y2 ...", coordinates divided by the
                         image's width and height

Each instance (8-connected component of a class) is one polygon from `rns.formats.instances`, vertices at
pixel centres, holes joined by zero-width cuts. An image with no instance gets an empty label file (YOLO's
"background image"). Lines are written largest instance first, so a reader that paints later lines over
earlier ones (as `read_yolo` does, and as Ultralytics' overlapping-mask mode orders them) lets a small
instance inside another's hole win.

`read_yolo` fills each polygon the way Ultralytics does (coordinates scaled and truncated to pixels,
OpenCV `fillPoly`), so it sees what a trainer would.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

from rns.errors import InputError
from rns.formats import _deps
from rns.formats.coco import image_size
from rns.formats.confine import Confinement, is_regular_file
from rns.formats.fields import class_name, describe, file_level
from rns.formats.instances import connected_instances, fill_polygon, instance_polygon
from rns.formats.items import ImportedSet, ItemError, ItemProblem, LabelledItem, new_mask, select_classes
from rns.io.atomic import fsync_directory
from rns.io.imageio import IMAGE_EXTENSIONS

DATA_YAML = "data.yaml"
COORDINATE_DIGITS = 6  # a millionth of the side: sub-pixel for images up to 500k pixels wide


def label_lines(labels: np.ndarray, classes: Sequence[tuple[int, int]]) -> list[str]:
    """The label file of one label map; `classes` pairs each label value with its YOLO class index."""
    height, width = labels.shape
    index_of = dict(classes)
    instances = sorted(connected_instances(labels, index_of), key=lambda item: -item.area)
    scale = np.array([width, height], dtype=np.float64)
    lines = []
    for instance in instances:
        polygon = instance_polygon(instance) / scale
        numbers = " ".join(f"{v:.{COORDINATE_DIGITS}f}" for v in polygon.ravel())
        lines.append(f"{index_of[instance.value]} {numbers}")
    return lines


def data_yaml(names: Sequence[str]) -> str:
    """data.yaml for a dataset in the folder that holds it (no `path`: readers use the file's folder)."""
    yaml = _deps.yaml()
    document = {"train": "images", "val": "images", "nc": len(names), "names": dict(enumerate(names))}
    header = "# YOLO segmentation dataset written by rns; labels/NAME.txt: class x1 y1 x2 y2 ... (0..1)\n"
    return header + yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


@dataclass(frozen=True)
class YoloImage:
    """One image of a dataset to write: the photo, its name in images/, and its label map."""

    source: Path
    file_name: str
    labels: np.ndarray


def write_dataset(folder: str | os.PathLike, images: Iterable[YoloImage],
                  classes: Sequence[tuple[int, str]]) -> tuple[Path, int, int]:
    """Write a YOLO segmentation dataset at `folder`; `classes` are (label value, name), in YOLO order.

    The dataset is built in a scratch folder beside `folder` and renamed into place, the old one (if
    any) removed only then, so a reader finds the old dataset or the new one, whole. Returns the
    folder, the number of images and of instances.
    """
    final = Path(folder)
    parent = final.parent
    for leftover in [*parent.glob(f".{final.name}-building-*"), *parent.glob(f".{final.name}-old-*")]:
        shutil.rmtree(leftover, ignore_errors=True)  # from a killed run
    building = parent / f".{final.name}-building-{os.getpid()}"
    mapping = [(value, index) for index, (value, _) in enumerate(classes)]
    count = instances = 0
    for image in images:
        lines = label_lines(image.labels, mapping)
        label_file = building / "labels" / Path(image.file_name).with_suffix(".txt")
        label_file.parent.mkdir(parents=True, exist_ok=True)
        label_file.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        link_or_copy(image.source, building / "images" / image.file_name)
        count += 1
        instances += len(lines)
    building.mkdir(parents=True, exist_ok=True)
    (building / DATA_YAML).write_text(data_yaml([name for _, name in classes]), encoding="utf-8")
    old = parent / f".{final.name}-old-{os.getpid()}"
    if final.exists():
        final.rename(old)
    building.rename(final)
    fsync_directory(parent)
    shutil.rmtree(old, ignore_errors=True)
    return final, count, instances


def link_or_copy(source: Path, target: Path) -> None:
    """Put `source` at `target` without doubling disk use where possible (hard link), else copy it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        target.unlink()
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


# ------------------------------------------------------------------------------------------- reading


MAX_DATA_YAML_BYTES = 1 << 20
"""data.yaml names classes and folders: a few KB. A larger file is not one (and is not parsed)."""

MAX_LABEL_FILE_BYTES = 64 << 20
"""One image's label file: 64 MB is millions of vertices, far beyond any real annotation."""


def _read_inside(path: Path, dataset: Confinement, limit: int, what: str) -> bytes:
    """A file of the dataset: a plain file inside its folder (links followed), at most `limit` bytes.

    Raises `ItemError`; the missing case says "not found" only for a name that lies inside the folder.
    """
    if not dataset.contains(path):
        raise ItemError(dataset.outside_reason(str(path), what))
    if not path.exists():
        raise ItemError(f"{what} {path} not found")
    if not is_regular_file(path):
        raise ItemError(f"{what} {path} is not a plain file (a folder, pipe or device)")
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as error:
        raise ItemError(f"{what} {path} cannot be read ({error.strerror or error})") from None
    if len(data) > limit:
        raise ItemError(f"{what} {path} is over {limit:,} bytes; that is not a YOLO {what}")
    return data


def _no_alias_loader(yaml: ModuleType) -> type:
    """PyYAML's safe loader refusing aliases (`*name`): a few hundred bytes of aliases expand to gigabytes,
    and a data.yaml never needs one."""

    class NoAliasLoader(yaml.SafeLoader):  # type: ignore[name-defined,misc]
        def compose_node(self, parent, index):  # type: ignore[no-untyped-def]
            if self.check_event(yaml.AliasEvent):
                raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed here",
                                                  self.peek_event().start_mark)
            return super().compose_node(parent, index)

    return NoAliasLoader


def _names_list(names: object, path: Path) -> list[object]:
    if isinstance(names, dict):
        keys = {}
        for key in names:
            numbered = isinstance(key, int) or (isinstance(key, str) and key.isdigit())
            if isinstance(key, bool) or not numbered:
                raise InputError(f"{path}: 'names' must number the classes 0..N-1, not {describe(key)}")
            keys[int(key)] = key
        if sorted(keys) != list(range(len(names))):
            raise InputError(f"{path}: 'names' must number the classes 0..N-1")
        return [names[keys[index]] for index in range(len(keys))]
    if not isinstance(names, list) or not names:
        raise InputError(f"{path}: no 'names' list of classes")
    return names


def _class_names(folder: Path, dataset: Confinement) -> list[str]:
    yaml = _deps.yaml()
    path = folder / DATA_YAML
    try:
        text = _read_inside(path, dataset, MAX_DATA_YAML_BYTES, "data.yaml").decode("utf-8-sig")
        document = yaml.load(text, Loader=_no_alias_loader(yaml))  # noqa: S506 - a safe loader, aliases off
    except ItemError as error:
        if not path.exists() and dataset.contains(path):
            raise InputError(f"{path} not found; give the folder of a YOLO dataset (with data.yaml)") \
                from None
        raise InputError(f"{error}; give the folder of a YOLO dataset (with data.yaml)") from None
    except UnicodeDecodeError as error:
        raise InputError(f"{path}: not readable YAML ({error})") from None
    except RecursionError:
        raise InputError(f"{path}: not readable YAML (nested too deep)") from None
    except yaml.YAMLError as error:
        raise InputError(f"{path}: not readable YAML ({' '.join(str(error).split())})") from None
    names = _names_list(document.get("names") if isinstance(document, dict) else None, path)
    try:
        return [class_name(name, f"class {index} of 'names'") for index, name in enumerate(names)]
    except ItemError as error:
        raise file_level(error, path) from None


def read_yolo(folder: str | os.PathLike, categories: Sequence[str] | None = None) -> ImportedSet:
    """An `ImportedSet` of a YOLO segmentation dataset: every image under images/ with its label file.

    Only files inside `folder` are read: a link in images/ or labels/ (or data.yaml) leading elsewhere is
    refused for its item.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"YOLO folder {folder} does not exist or is not a folder: check --yolo")
    dataset = Confinement([folder])
    all_names = _class_names(folder, dataset)
    names = select_classes(all_names, categories, str(folder / DATA_YAML))
    images = sorted(p for p in (folder / "images").rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)

    def entries() -> Iterator[LabelledItem | ItemProblem]:
        for image in images:
            relative = image.relative_to(folder / "images").with_suffix(".txt")
            try:
                if not dataset.contains(image):
                    raise ItemError(dataset.outside_reason(image.name, "image"))
                if not is_regular_file(image):
                    raise ItemError("not a plain file (a folder, pipe or device named like an image)")
                mask = _read_labels(folder / "labels" / relative, image, all_names, names, dataset)
            except ItemError as error:
                yield ItemProblem(str(image), str(error))
            else:
                yield LabelledItem(name=str(image), image=image, mask=mask)

    return ImportedSet(source=str(folder), class_names=names, entries=entries)


def _read_labels(path: Path, image: Path, all_names: list[str], names: list[str], dataset: Confinement,
                 ) -> np.ndarray:
    width, height = image_size(image)
    try:
        lines = _read_inside(path, dataset, MAX_LABEL_FILE_BYTES, "label file").decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise ItemError(f"label file {path} is not UTF-8 text") from None
    mask = new_mask(height, width)
    for number, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields:
            continue
        try:
            class_index, values = int(fields[0]), np.array([float(v) for v in fields[1:]])
        except ValueError:
            raise ItemError(f"{path} line {number}: not 'class x1 y1 x2 y2 ...'") from None
        if not 0 <= class_index < len(all_names):
            raise ItemError(f"{path} line {number}: class {class_index} is not in data.yaml's names")
        if values.size < 6 or values.size % 2:
            raise ItemError(f"{path} line {number}: a polygon needs at least 3 (x, y) pairs")
        if not (np.isfinite(values).all() and (values >= 0).all() and (values <= 1).all()):
            raise ItemError(f"{path} line {number}: coordinates must be numbers from 0 to 1 (fractions of "
                            "the image's width and height)")
        if all_names[class_index] not in names:
            continue
        polygon = values.reshape(-1, 2) * np.array([width, height])
        mask[fill_polygon(polygon, height, width)] = names.index(all_names[class_index])
    return mask
