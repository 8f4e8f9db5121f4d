"""`rns eval`: mIoU and per-class IoU of a labelled image set, pixels marked 255 ignored."""

from __future__ import annotations

import json
from contextlib import nullcontext

import click

from rns.choices import REGION_CHOICES
from rns.cli.group import backbone_options, cli, memory_option
from rns.errors import InputError

EPILOG = """\b
Example:
  rns eval --images camvid/test/images --masks camvid/test/masks --classes-file camvid/classes.txt
  rns eval --images val2017/ --coco instances_val2017.json --categories "car,person"
"""


@cli.command("eval", epilog=EPILOG)
@click.option("--images", "images_dir", required=True, type=click.Path(file_okay=False),
              help="Folder of query images.")
@click.option("--masks", "masks_dir", type=click.Path(file_okay=False),
              help="Folder of ground-truth masks, paired with the images by file name.")
@click.option("--classes-file", type=click.Path(dir_okay=False),
              help="One class name per line; line i names mask value i (a first line 'background' is "
                   "the background class).")
@click.option("--coco", type=click.Path(dir_okay=False),
              help="Ground truth from a COCO instances file instead of --masks/--classes-file; pixels no "
                   "annotation covers are not scored.")
@click.option("--categories", metavar="NAMES",
              help='With --coco: score only these categories, e.g. "car,bus".')
@click.option("--zero-shot", is_flag=True, help="Ignore the support memory: text only.")
@click.option("--regions", type=click.Choice(REGION_CHOICES), default="none",
              show_default=True, help="Classify regions instead of patches.")
@click.option("--sam-checkpoint", type=click.Path(dir_okay=False), default=None,
              help="SAM checkpoint file for --regions sam.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the first N images.")
@click.option("--json", "as_json", is_flag=True, help="Print the scores as JSON.")
@memory_option
@backbone_options
def eval_command(images_dir: str, masks_dir: str | None, classes_file: str | None, coco: str | None,
                 categories: str | None, zero_shot: bool, regions: str, sam_checkpoint: str | None,
                 limit: int | None, as_json: bool, memory_path: str | None,
                 model: str | None, pretrained: str | None, checkpoint: str | None, variant: str | None,
                 device: str) -> int:
    """Score rns on images with ground-truth masks (uses the support memory unless --zero-shot)."""
    from rns.evaluate.folder_eval import load_labelled_set

    if coco is not None:
        if masks_dir or classes_file:
            raise InputError("--coco is the ground truth: leave out --masks and --classes-file")
        from rns.formats.ground_truth import coco_labelled_set
        from rns.formats.items import parse_categories

        truth = coco_labelled_set(coco, images_dir, parse_categories(categories), limit=limit)
    else:
        if not masks_dir or not classes_file:
            raise InputError("give the ground truth: --masks DIR --classes-file FILE, or --coco FILE")
        if categories is not None:
            raise InputError("--categories applies to --coco")
        truth = nullcontext((load_labelled_set(images_dir, masks_dir, classes_file, limit=limit), []))
    with truth as (labelled, problems):
        code = _evaluate(labelled, zero_shot, regions, sam_checkpoint, as_json, memory_path, model,
                         pretrained, checkpoint, variant, device)
    for problem in problems:
        click.echo(f"problem (not scored): {problem}", err=True)
    return 1 if problems else code


def _evaluate(labelled, zero_shot: bool, regions: str, sam_checkpoint: str | None, as_json: bool,
              memory_path: str | None, model: str | None, pretrained: str | None, checkpoint: str | None,
              variant: str | None, device: str) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    from rich.table import Table

    from rns.adapt import AdaptConfig
    from rns.backbone import RANDOM_LABEL
    from rns.evaluate.folder_eval import evaluate
    from rns.segment.pipeline import SegmentOptions, build_segmenter

    options = SegmentOptions(zero_shot=zero_shot, background=labelled.has_background, regions=regions,
                             sam_checkpoint=sam_checkpoint, adapt=AdaptConfig())
    segmenter = build_segmenter(labelled.foreground_names, memory_path=memory_path, model=model,
                                pretrained=pretrained, checkpoint=checkpoint, variant=variant, device=device,
                                options=options)
    console = Console(stderr=True)
    info = segmenter.describe()
    with Progress(TextColumn("evaluating"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, disable=as_json) as bar:
        task = bar.add_task("eval", total=len(labelled.pairs))
        report = evaluate(segmenter, labelled, progress=lambda done, total: bar.update(task, completed=done))
    result = {"model": info["model"], "weights": info["weights"], "mode": info["mode"], **report.to_json()}
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return 0
    out = Console()
    out.print(f"{info['mode']} | {info['model']} ({info['weights']}) | {report.num_images} images",
              highlight=False)
    if info["weights"] == RANDOM_LABEL:
        out.print("random weights: these numbers test the wiring and say nothing about accuracy",
                  style="bold red", highlight=False)
    table = Table()
    table.add_column("class")
    table.add_column("IoU %", justify="right")
    for name, value in result["iou"].items():
        table.add_row(name, "-" if value is None else f"{value:.1f}")
    table.add_row("[bold]mIoU[/]", f"[bold]{result['miou']:.1f}[/]" if result["miou"] is not None else "-")
    out.print(table)
    return 0
