"""`rns segment --export coco|yolo`: one dataset file (or folder) for a whole run, built from its outputs.

The export is made after the run, from the per-image label PNGs on disk, not from the segmentations in
memory. So it agrees with the per-image files by construction, and a resumed run (whose skipped images
were segmented by an earlier process) exports exactly like a fresh one. It covers the run's inputs that
are done or skipped; failed images are left out, as they are from the run's other outputs.

- `coco`: `OUT/coco.json`, written atomically (`rns.io.atomic`). `file_name` is the image's output stem
  plus its extension, i.e. its path relative to the input folder. Categories are the run's classes
  without background, numbered from 1 in the run's order: with the background class (label 0), the
  category id is the label PNG's class id; with `--no-background` it is the class id plus one, since
  many tools read category 0 as "no object". Each annotation's `score` is the
  mean probability of its class over its pixels, from `<stem>.probs.npz`; `--export coco` therefore
  also saves `labels` and `probs` per image.
- `yolo`: `OUT/yolo/` (see `rns.formats.yolo`), built in a scratch folder beside it and renamed into
  place, the old one removed only then; a killed run leaves the previous export whole. `--export yolo`
  also saves `labels` per image.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rns.errors import InputError
from rns.formats.coco import Category, ExportImage, coco_document
from rns.formats.yolo import YoloImage, write_dataset
from rns.io.atomic import atomic_write_json
from rns.io.output_specs import EXPORT_FORMATS, parse_export, save_kinds_for
from rns.io.outputs import output_paths, read_labels_png, read_probs_npz
from rns.run.inputs import InputImage
from rns.segmentation import BACKGROUND

COCO_NAME = "coco.json"
YOLO_NAME = "yolo"


@dataclass
class ExportReport:
    """Where each export went and how much it holds."""

    paths: dict[str, Path] = field(default_factory=dict)
    images: int = 0
    instances: int = 0


def _exported_classes(class_names: Sequence[str]) -> list[tuple[int, str]]:
    """(class id, name) of the classes that become categories: all but background."""
    return [(i, name) for i, name in enumerate(class_names) if not (i == 0 and name == BACKGROUND)]


def _images(out: Path, images: Sequence[InputImage], failed: set[Path], probabilities: bool,
            class_names: Sequence[str]) -> Iterator[tuple[InputImage, ExportImage]]:
    for image in images:
        if image.path in failed:
            continue
        paths = output_paths(out, image.stem, {"labels", "probs"})
        labels = read_labels_png(paths["labels"])
        if labels.size and labels.max() >= len(class_names):
            raise InputError(f"{paths['labels']} holds class ids beyond the run's {len(class_names)} "
                             "classes: run again with --force")
        probs = None
        if probabilities:
            probs, names = read_probs_npz(paths["probs"])
            if names != list(class_names):
                raise InputError(f"{paths['probs']} is of other classes ({names}): run again with --force")
        yield image, ExportImage(file_name=f"{image.stem}{image.path.suffix}", labels=labels,
                                 probabilities=probs)


def export_run(
    out_dir: str | os.PathLike,
    images: Sequence[InputImage],
    class_names: Sequence[str],
    exports: Iterable[str],
    *,
    failed: Iterable[str | os.PathLike] = (),
) -> ExportReport:
    """Write the requested exports of a finished run into `out_dir` from its label (and probs) files."""
    out = Path(out_dir)
    exports = set(exports)
    failed_paths = {Path(p) for p in failed}
    report = ExportReport()
    if not class_names:
        return report  # nothing was segmented: no class list to export against
    classes = _exported_classes(class_names)
    if "coco" in exports:
        categories = [Category(id=n + 1, name=name, value=i) for n, (i, name) in enumerate(classes)]
        # Streamed: one image's label map and probabilities in memory at a time.
        exported = (e for _, e in _images(out, images, failed_paths, True, class_names))
        document = coco_document(exported, categories)
        report.paths["coco"] = atomic_write_json(out / COCO_NAME, document)
        report.images, report.instances = len(document["images"]), len(document["annotations"])
    if "yolo" in exports:
        report.paths["yolo"], count, instances = _write_yolo(out, images, failed_paths, class_names, classes)
        report.images, report.instances = count, instances
    return report


def _write_yolo(out: Path, images: Sequence[InputImage], failed: set[Path], class_names: Sequence[str],
                classes: list[tuple[int, str]]) -> tuple[Path, int, int]:
    entries = (YoloImage(source=image.path, file_name=exported.file_name, labels=exported.labels)
               for image, exported in _images(out, images, failed, False, class_names))
    return write_dataset(out / YOLO_NAME, entries, classes)


__all__ = ["EXPORT_FORMATS", "ExportReport", "export_run", "parse_export", "save_kinds_for"]
