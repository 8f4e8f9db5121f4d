"""`rns add-support`: teach rns from labelled example images (a thin shell over `rns.teach.support`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from rns.choices import DEFAULT_BATCH_SIZE
from rns.cli.group import backbone_options, cli, memory_option
from rns.errors import InputError
from rns.paths import default_memory_path

if TYPE_CHECKING:  # the heavy modules load when the command runs, not for --help
    from rich.progress import TaskID

    from rns.formats.sources import ImportRequest
    from rns.formats.teach import ImportReport
    from rns.teach.mask_conventions import LabelMapping
    from rns.teach.support import AddReport, ProgressCallback

_MAX_LISTED_OUTCOMES = 20


@cli.command("add-support")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--images", "images_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder of support images (bulk mode; pairs with --masks by file name), or of an "
                   "export's images (--coco, --label-studio, --labelmap; --labelme saved apart).")
@click.option("--masks", "masks_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder of masks named like their images (a.jpg <-> a.png).")
@click.option("--class", "class_name", metavar="NAME",
              help="Binary masks (0/1 or 0/255): nonzero pixels are this class.")
@click.option("--labels", "labels_spec", metavar="MAP",
              help='Index masks: value=name pairs, e.g. "0=background,1=bus". 255 is ignored. "voc": '
                   "colour masks in the Pascal VOC colours and class list (with --images/--masks).")
@click.option("--classes-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Index masks: a text file naming value i on line i+1 (one class per line).")
@click.option("--text", "text_prompt", metavar="PROMPT",
              help="With --class: the words to describe the class by, when they differ from its name.")
@click.option("--no-text", is_flag=True,
              help="With --class: the class has no usable name (e.g. my-backpack); rely on its examples.")
@click.option("--coco", type=click.Path(dir_okay=False, path_type=Path),
              help="A COCO instances file (with --images DIR): polygons, RLE, uncompressed RLE. Overlaps: "
                   "crowd regions (iscrowd=1) are painted first, then instances in file order, a later "
                   "one over an earlier; pixels no annotation covers stay unlabelled (ignored).")
@click.option("--labelme", type=click.Path(file_okay=False, path_type=Path),
              help="A folder of LabelMe JSON files (polygon, rectangle, circle; image embedded, beside the "
                   "file, or in --images DIR). Shapes painted in order, later over earlier; label __ignore__ "
                   "is ignored.")
@click.option("--label-studio", type=click.Path(dir_okay=False, path_type=Path),
              help="A Label Studio JSON export (with --images DIR): brush, polygon and rectangle labels.")
@click.option("--yolo", type=click.Path(file_okay=False, path_type=Path),
              help="A YOLO segmentation dataset folder (data.yaml, images/, labels/).")
@click.option("--labelmap", type=click.Path(dir_okay=False, path_type=Path),
              help="CVAT's labelmap.txt (name:r,g,b) for colour masks in --masks DIR.")
@click.option("--categories", metavar="NAMES",
              help='With an import: keep only these classes, e.g. "car,person" (others stay unlabelled).')
@click.option("--pooling", type=click.Choice(["count", "area"]), default="count", show_default=True,
              help="How mask pixels weigh patches: count (the paper's: mask resized like the photo, pixels "
              "counted per patch) or area (exact area of the original mask). One memory holds one kind.")
@click.option("--commit-every", type=click.IntRange(min=1), default=DEFAULT_BATCH_SIZE, show_default=True,
              help="Images per memory commit; a killed run keeps the commits it finished.")
@memory_option
@backbone_options
def add_support_command(
    files: tuple[Path, ...],
    images_dir: Path | None,
    masks_dir: Path | None,
    class_name: str | None,
    labels_spec: str | None,
    classes_file: Path | None,
    text_prompt: str | None,
    no_text: bool,
    coco: Path | None,
    labelme: Path | None,
    label_studio: Path | None,
    yolo: Path | None,
    labelmap: Path | None,
    categories: str | None,
    pooling: str,
    commit_every: int,
    memory_path: str | None,
    model: str | None,
    pretrained: str | None,
    checkpoint: str | None,
    variant: str | None,
    device: str,
) -> int:
    """Add labelled example images (IMAGE MASK pairs, or another tool's export) to the support memory.

    Stores one feature prototype per class per image, never the pixels. Re-adding an image with the
    same mask changes nothing; with a new mask it replaces the old entry.

    \b
    Examples:
      rns add-support bus1.jpg bus1_mask.png bus2.jpg bus2_mask.png --class bus
      rns add-support pack.jpg pack_mask.png --class my-backpack --no-text
      rns add-support street.jpg street.png --labels "0=background,1=bus,2=car"
      rns add-support --images train/images --masks train/masks --classes-file classes.txt
      rns add-support --coco instances.json --images images/ --categories "car,person"
      rns add-support --labelme labelme_folder/
      rns add-support --images JPEGImages --masks SegmentationClass --labelmap labelmap.txt
      rns add-support --label-studio export.json --images images/

    An import adds every usable image; an image it cannot use (missing file, unknown category, polygon
    outside the image) is listed, the rest still added, and the exit code is 1.
    """
    from rns.formats.sources import VOC, ImportRequest

    request = ImportRequest(coco=coco, labelme=labelme, label_studio=label_studio, yolo=yolo,
                            labelmap=labelmap, voc=(labels_spec or "").strip().lower() == VOC,
                            images_dir=images_dir, masks_dir=masks_dir, categories=categories)
    if request.wanted:
        labels_map = None if request.voc else labels_spec
        others = [flag for flag, value in (("IMAGE MASK files", files or None), ("--class", class_name),
                                           ("--labels", labels_map),
                                           ("--classes-file", classes_file), ("--text", text_prompt),
                                           ("--no-text", no_text or None)) if value is not None]
        if others:
            raise InputError(f"{' and '.join(others)} cannot be combined with {request.kinds[0]}: "
                             "an export names its own classes")
        return _import(request, default_memory_path(memory_path), commit_every, pooling,
                       dict(model=model, pretrained=pretrained, checkpoint=checkpoint, variant=variant,
                            device=device))
    if categories is not None:
        raise InputError("--categories selects classes of an export: use it with --coco, --labelme, "
                         "--label-studio, --yolo, --labelmap or --labels voc")
    if text_prompt is not None:
        from rns.backbone.families import model_has_text, no_text_error, resolve_model_name

        if not model_has_text(model):
            raise no_text_error(resolve_model_name(model), class_name or text_prompt, "was given --text")
    pairs = _pairs(files, images_dir, masks_dir)
    mapping = _mapping(class_name, labels_spec, classes_file)
    class_texts = _class_texts(mapping, text_prompt, no_text)
    memory_location = default_memory_path(memory_path)
    from rns.teach.support import add_supports_at  # torch: only once the arguments are known to be good

    def load_backbone():
        from rns.backbone import build_backbone

        with _status(f"loading the model ({model or 'default'})"):
            return build_backbone(model=model, pretrained=pretrained, checkpoint=checkpoint, variant=variant,
                                  device=device)

    with stage_progress() as progress:
        report = add_supports_at(memory_location, pairs, mapping, load_backbone, class_texts=class_texts,
                                 batch_size=commit_every, progress=progress, pooling=pooling)
    _print_report(report, memory_location)
    _note_binary_masks_on_image_only(mapping, model)
    return 0


def _note_binary_masks_on_image_only(mapping: LabelMapping, model: str | None) -> None:
    """Say, for a backbone with no text, that a binary mask's zero pixels taught nothing (not background)."""
    from rns.backbone.families import model_has_text, resolve_model_name

    if not mapping.binary or model_has_text(model):
        return
    (name,) = mapping.class_names
    click.echo(f"note: the zero pixels of these masks are unlabelled, not background; "
               f"{resolve_model_name(model)} learns background from examples only: to segment {name!r} "
               f"against the rest, teach background too (--labels \"0=background,1={name}\") or a second "
               "class", err=True)


def _import(request: ImportRequest, memory_location: Path | str, commit_every: int, pooling: str,
            backbone_args: dict) -> int:
    from rns.formats.sources import open_import
    from rns.formats.teach import add_imported

    imported = open_import(request)

    def load_backbone():
        from rns.backbone import build_backbone

        with _status(f"loading the model ({backbone_args['model'] or 'default'})"):
            return build_backbone(**backbone_args)

    with stage_progress() as progress:
        report = add_imported(imported, memory_location, load_backbone, batch_size=commit_every,
                              progress=progress, pooling=pooling)
    _print_import(report, memory_location)
    return report.exit_code


def _print_import(report: ImportReport, memory_location: Path | str) -> None:
    outcomes = report.added.outcomes
    if len(outcomes) <= _MAX_LISTED_OUTCOMES:
        for outcome, name in zip(outcomes, report.names, strict=True):
            click.echo(f"{outcome.status:<9} {name}  ({', '.join(outcome.classes)})")
    for note in report.notes[:_MAX_LISTED_OUTCOMES]:
        click.echo(f"note: {note}", err=True)
    if report.empty:
        click.echo(f"{len(report.empty)} image(s) label no pixel of the chosen classes; left out "
                   f"(e.g. {report.empty[0]})")
    for problem in report.problems:
        click.echo(f"problem: {problem}", err=True)
    counts = ", ".join(f"{report.added.count(s)} {s}" for s in ("added", "replaced", "unchanged"))
    click.echo(f"{len(outcomes)} image(s): {counts}; {len(report.problems)} with problems (left out)")
    click.echo(f"classes: {', '.join(report.added.classes)}")
    click.echo(f"memory: {memory_location}")


def _pairs(
    files: tuple[Path, ...], images_dir: Path | None, masks_dir: Path | None
) -> list[tuple[Path, Path]]:
    if images_dir is not None or masks_dir is not None:
        if files:
            raise InputError("give either IMAGE MASK pairs or --images DIR --masks DIR, not both")
        if images_dir is None or masks_dir is None:
            raise InputError("bulk mode needs both --images DIR and --masks DIR")
        from rns.teach.pairing import pair_by_stem

        return pair_by_stem(images_dir, masks_dir)
    if not files:
        raise InputError("no support images given; pass IMAGE MASK pairs, or --images DIR --masks DIR")
    if len(files) % 2:
        raise InputError(
            f"{len(files)} files given but they must come in IMAGE MASK pairs; {files[-1]} has no partner"
        )
    for index, path in enumerate(files):  # before torch is imported: a typo fails in milliseconds
        if not path.is_file():
            what = "mask" if index % 2 else "image"
            problem = "is not a file" if path.exists() else "does not exist"
            raise InputError(f"{what} {path} {problem}: check the path")
    return [(files[i], files[i + 1]) for i in range(0, len(files), 2)]


def _mapping(class_name: str | None, labels_spec: str | None, classes_file: Path | None) -> LabelMapping:
    from rns.teach.mask_conventions import LabelMapping

    given = [flag for flag, value in (("--class", class_name), ("--labels", labels_spec),
                                      ("--classes-file", classes_file)) if value is not None]
    if len(given) != 1:
        problem = "say what the masks mean" if not given else f"{' and '.join(given)} both given"
        raise InputError(
            f"{problem}: use exactly one of --class NAME (binary masks), --labels \"0=background,1=bus\" "
            "or --classes-file FILE (index masks)"
        )
    if class_name is not None:
        return LabelMapping.single_class(class_name)
    if labels_spec is not None:
        return LabelMapping.parse(labels_spec)
    assert classes_file is not None
    return LabelMapping.from_classes_file(classes_file)


def _class_texts(
    mapping: LabelMapping, text_prompt: str | None, no_text: bool
) -> dict[str, str | None] | None:
    if text_prompt is None and not no_text:
        return None
    if text_prompt is not None and no_text:
        raise InputError("--text and --no-text contradict each other; give one of them")
    flag = "--no-text" if no_text else "--text"
    if not mapping.binary:
        raise InputError(f"{flag} applies to one class: use it with --class NAME")
    (name,) = mapping.class_names
    if no_text:
        return {name: None}
    prompt = " ".join(text_prompt.split())
    if not prompt:
        raise InputError("--text is empty; give the words that describe the class, or use --no-text")
    return {name: prompt}


@contextmanager
def _status(message: str) -> Iterator[None]:
    """A spinner on stderr for a step with no count (loading the model)."""
    from rich.console import Console

    console = Console(stderr=True)
    if not console.is_terminal:  # no spinner frames (or stray blank lines) in logs and pipes
        yield
        return
    with console.status(message):
        yield


@contextmanager
def stage_progress() -> Iterator[ProgressCallback]:
    """A rich progress bar on stderr fed by `rns.teach.support`'s `progress(stage, done, total)` callbacks.

    It draws only on a terminal and disappears when done. In a log or a pipe it prints one line per image
    extracted as it happens (each can take many seconds on a CPU).
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description:<10}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    console = Console(stderr=True)
    with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as bar:
        tasks: dict[str, TaskID] = {}

        def update(stage: str, done: int, total: int) -> None:
            if not console.is_terminal:
                if stage == "extracting":  # the slow stage; checking takes milliseconds per image
                    click.echo(f"{stage} {done}/{total}", err=True)
                return
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done)

        yield update


def _print_report(report: AddReport, memory_location: Path | str) -> None:
    outcomes = report.outcomes
    if len(outcomes) <= _MAX_LISTED_OUTCOMES:
        for outcome in outcomes:
            click.echo(f"{outcome.status:<9} {outcome.image}  ({', '.join(outcome.classes)})")
    counts = ", ".join(f"{report.count(status)} {status}" for status in ("added", "replaced", "unchanged"))
    click.echo(f"{len(outcomes)} image(s): {counts}")
    click.echo(f"classes: {', '.join(report.classes)}")
    click.echo(f"memory: {memory_location}")
