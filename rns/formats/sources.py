"""Choosing the reader for what the user pointed at (`rns add-support` and `rns eval` options).

One place decides which export a combination of options means, so the commands stay thin and agree:
`--coco FILE --images DIR`, `--labelme DIR` (with `--images DIR` when LabelMe saved apart from the
images), `--label-studio FILE --images DIR`, `--yolo DIR`, and
colour masks: `--images DIR --masks DIR` with `--labelmap FILE` or `--labels voc`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rns.errors import InputError
from rns.formats.confine import OUTSIDE_LINK
from rns.formats.items import ImportedSet, ItemProblem, parse_categories

VOC = "voc"


@dataclass(frozen=True)
class ImportRequest:
    """The import options of a command line; at most one export kind may be set."""

    coco: Path | None = None
    labelme: Path | None = None
    label_studio: Path | None = None
    yolo: Path | None = None
    labelmap: Path | None = None
    voc: bool = False
    images_dir: Path | None = None
    masks_dir: Path | None = None
    categories: str | None = None

    @property
    def kinds(self) -> list[str]:
        """The export options given, as their flags."""
        flags = {"--coco": self.coco, "--labelme": self.labelme, "--label-studio": self.label_studio,
                 "--yolo": self.yolo, "--labelmap": self.labelmap, "--labels voc": self.voc or None}
        return [flag for flag, value in flags.items() if value is not None]

    @property
    def wanted(self) -> bool:
        """Whether these options ask for an import from another tool's format."""
        return bool(self.kinds)


def open_import(request: ImportRequest) -> ImportedSet:
    """The `ImportedSet` the options describe, or `InputError` for a contradictory combination."""
    kinds = request.kinds
    if len(kinds) != 1:
        raise InputError(f"{' and '.join(kinds)} both given: import one export at a time" if kinds else
                         "no export given: use --coco, --labelme, --label-studio, --yolo, --labelmap or "
                         "--labels voc")
    categories = parse_categories(request.categories)
    (kind,) = kinds
    needs_images = kind in ("--coco", "--label-studio", "--labelmap", "--labels voc")
    if needs_images and request.images_dir is None:
        raise InputError(f"{kind} needs --images DIR, the folder of the labelled images")
    if not needs_images and kind != "--labelme" and request.images_dir is not None:
        raise InputError(f"{kind} finds its images itself; leave out --images")
    needs_masks = kind in ("--labelmap", "--labels voc")
    if needs_masks != (request.masks_dir is not None):
        raise InputError(f"{kind} needs --masks DIR, the folder of colour masks" if needs_masks else
                         f"{kind} reads no mask folder; leave out --masks")
    if request.coco is not None:
        from rns.formats.coco import read_coco

        return read_coco(request.coco, request.images_dir, categories)  # type: ignore[arg-type]
    if request.labelme is not None:
        from rns.formats.labelme import read_labelme

        return read_labelme(request.labelme, categories, request.images_dir)
    if request.label_studio is not None:
        from rns.formats.label_studio import read_label_studio

        return read_label_studio(request.label_studio, request.images_dir, categories)  # type: ignore[arg-type]
    if request.yolo is not None:
        from rns.formats.yolo import read_yolo

        return read_yolo(request.yolo, categories)
    from rns.formats.colour_masks import read_colour_masks, read_labelmap, voc_colours
    from rns.teach.pairing import pair_by_stem

    outside: list[Path] = []
    pairs = pair_by_stem(request.images_dir, request.masks_dir, refused=outside)  # type: ignore[arg-type]
    refused = [ItemProblem(str(path), OUTSIDE_LINK) for path in outside]
    if request.voc:
        return read_colour_masks(pairs, voc_colours(), "the VOC class list", categories, refused)
    assert request.labelmap is not None
    table = read_labelmap(request.labelmap)
    return read_colour_masks(pairs, table, str(request.labelmap), categories, refused)
