"""`rns segment`: one photo, several, a folder or a list file; masks, overlays and summaries out."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from rns.choices import DEFAULT_SOLVER, DEFAULT_WEIGHTING, REGION_CHOICES, SOLVERS, WEIGHTINGS
from rns.cli.group import backbone_options, cli, memory_option
from rns.errors import InputError

if TYPE_CHECKING:  # the heavy modules load when the command runs, not for --help
    from rich.console import Console

    from rns.formats.run_export import ExportReport
    from rns.run.run_events import RunReport

EPILOG = """\b
Examples:
  rns segment photo.jpg --classes "bus,car"
  rns segment photos/ --classes "bus,car" --out results/ --save all
  rns segment @todo.txt --zero-shot --json > log.jsonl
  rns segment photos/ --classes "car,person" --out results/ --export coco,yolo
"""


@cli.command("segment", epilog=EPILOG)
@click.argument("inputs", nargs=-1, required=True)
@click.option("--classes", default=None, help='Comma-separated class names, e.g. "bus,car". Default: all '
              "classes in the memory.")
@click.option("--out", "out_dir", default="rns-out", show_default=True, type=click.Path(file_okay=False),
              help="Output folder (subfolders of a folder input are mirrored).")
@click.option("--save", default="labels,overlay,summary", show_default=True,
              help="Outputs per image: labels, overlay, summary, probs, rle, or all.")
@click.option("--export", "export", metavar="FORMATS", default=None,
              help="Also write the run as a dataset: coco (OUT/coco.json: one RLE annotation per connected "
                   "instance, with a score) and/or yolo (OUT/yolo/: data.yaml, images/, labels/ with one "
                   "polygon per instance). Built at the end of the run from the per-image label files, so "
                   "a resumed run exports everything; coco also saves labels and probs, yolo labels.")
@click.option("--zero-shot", is_flag=True, help="Ignore the support memory: text only.")
@click.option("--regions", type=click.Choice(REGION_CHOICES), default="none",
              show_default=True,
              help="Classify regions instead of patches: sharper boundaries, more compute.")
@click.option("--sam-checkpoint", type=click.Path(dir_okay=False), default=None,
              help="SAM checkpoint file for --regions sam (or $RNS_SAM_CHECKPOINT).")
@click.option("--no-background", is_flag=True,
              help="No added background class: every pixel gets one of the named classes (the paper's "
              "setting; use it when the classes cover everything in the photos).")
@click.option("--background-threshold", type=click.FloatRange(0, 1), default=None,
              help="Pixels whose best class probability is below this become background.")
@click.option("--solver", type=click.Choice(SOLVERS), default=DEFAULT_SOLVER,
              show_default=True,
              help="Head fit: the paper's 700-step AdamW (adamw), or a 10x faster approximation (fast).")
@click.option("--steps", type=click.IntRange(min=1), default=None,
              help="Steps of the AdamW schedule (700); the fast solver takes 10x fewer.")
@click.option("--weighting", type=click.Choice(WEIGHTINGS), default=DEFAULT_WEIGHTING,
              show_default=True,
              help="Sample weights normalised over all samples (global, the paper's) or within each term.")
@click.option("--k", "k", type=click.IntRange(min=1), default=4, show_default=True,
              help="Neighbours retrieved per patch.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the head's initial weights (the same start for every image).")
@click.option("--glob", "glob_pattern", default="**/*", show_default=True,
              help="Which files of a folder input to take.")
@click.option("--force", is_flag=True, help="Redo images whose outputs are already up to date.")
@click.option("--ray", "ray_address", default=None, is_flag=False, flag_value="local", metavar="[ADDRESS]",
              help="Run on Ray Data: alone, a local Ray instance; 'auto', the running cluster; or a Ray "
                   "address (host:6379, ray://host:10001). Put it after the inputs. Needs the ray extra.")
@click.option("--ray-workers", type=click.IntRange(min=1), default=None,
              help="With --ray: model copies (actors); default one per CPU, or per GPU on a GPU device.")
@click.option("--batch-size", "batch_size", metavar="N|auto", default="auto", show_default=True,
              help="Images per backbone forward (their crops share it). auto: 1 on a CPU, where batching "
                   "gains nothing; on a CUDA GPU as many as fit in half its free memory, at most 16. "
                   "Outputs do not depend on it (up to a GPU's last-bit rounding), so changing it never "
                   "redoes finished images.")
@click.option("--quiet", "-q", is_flag=True,
              help="No progress bar; only errors and the final line (what was done, where).")
@click.option("--json", "json_lines", is_flag=True, help="Machine-readable JSON lines on stdout.")
@memory_option
@backbone_options
def segment_command(inputs: tuple[str, ...], classes: str | None, out_dir: str, save: str, export: str | None,
                    zero_shot: bool, regions: str, sam_checkpoint: str | None, no_background: bool,
                    background_threshold: float | None, solver: str, steps: int | None, weighting: str,
                    k: int, seed: int, glob_pattern: str, force: bool, ray_address: str | None,
                    ray_workers: int | None, batch_size: str, quiet: bool, json_lines: bool,
                    memory_path: str | None, model: str | None, pretrained: str | None,
                    checkpoint: str | None, variant: str | None, device: str) -> int:
    """Segment the named classes in photos (files, folders, or @list.txt files)."""
    from rns.io.output_specs import needs_probabilities, parse_export, parse_save, save_kinds_for
    from rns.run.batch_size import parse_batch_size
    from rns.segment.requested_classes import parse_class_list

    # Option values first, with light modules only: a typo is refused in milliseconds, not after torch.
    if ray_address is None and ray_workers is not None:
        raise InputError("--ray-workers needs --ray; add --ray, or drop --ray-workers")
    exports = parse_export(export)
    batch = parse_batch_size(batch_size)
    if ray_address is not None and batch not in ("auto", 1):
        raise InputError("--batch-size applies to a local run; with --ray each worker segments one image at "
                         "a time (use --ray-workers to size the pool), so drop --batch-size")
    kinds = save_kinds_for(parse_save(save), exports)
    if no_background and background_threshold is not None:
        raise InputError("--background-threshold needs a background class; drop it or --no-background")
    parse_class_list(classes)  # "car;road" is refused here, before the model loads
    from rns.run.inputs import expand_inputs

    # Inputs are checked before the model is built, so a missing file fails at once, not after seconds.
    images = expand_inputs(list(inputs), glob=glob_pattern, exclude=[Path(out_dir)])
    if ray_address is not None:  # before anything is built or written: Ray is an optional extra
        from rns.run.ray_session import import_ray

        import_ray(ray_address)
    from rich.console import Console

    from rns.run.progress import FinalLineProgress, JsonLinesProgress, RichProgress
    from rns.run.runner import run_folder

    err = Console(stderr=True)
    single = len(images) == 1
    # A rerun with nothing left to do decides so before the model (or Ray) starts.
    from rns.paths import default_memory_path
    from rns.run.resume_plan import memory_identity, nothing_to_do, request_fingerprint

    asked = dict(classes=classes, zero_shot=zero_shot, regions=regions, sam_checkpoint=sam_checkpoint,
                 no_background=no_background, background_threshold=background_threshold, solver=solver,
                 steps=steps, weighting=weighting, k=k, seed=seed, model=model, pretrained=pretrained,
                 checkpoint=checkpoint, variant=variant, device=device.lower(),
                 memory=str(default_memory_path(memory_path)))
    request = request_fingerprint(asked, [checkpoint, sam_checkpoint],
                                  memory_identity(default_memory_path(memory_path), zero_shot))
    recorded = None if force else nothing_to_do(images, out_dir, kinds, request)
    if recorded is not None:
        observer = JsonLinesProgress(sys.stdout) if json_lines else FinalLineProgress(err)
        report = run_folder(recorded, images, out_dir, save=kinds, observer=observer, request=request)
        return _finish(report, images, exports, json_lines, quiet, err)
    from rns.adapt import AdaptConfig
    from rns.segment.pipeline import SegmentOptions, build_segmenter

    adapt = AdaptConfig(k=k, seed=seed, solver=solver, weighting=weighting,
                        background_threshold=background_threshold, **({"steps": steps} if steps else {}))
    options = SegmentOptions(zero_shot=zero_shot, background=not no_background, regions=regions,
                             sam_checkpoint=sam_checkpoint,
                             keep_probabilities=needs_probabilities(kinds), adapt=adapt)
    segmenter = build_segmenter(classes, memory_path=memory_path, model=model, pretrained=pretrained,
                                checkpoint=checkpoint, variant=variant, device=device, options=options)
    if json_lines:
        observer = JsonLinesProgress(sys.stdout)
    elif quiet or single:
        observer = FinalLineProgress(err, quiet=single)  # a lone photo's line is printed below
    else:
        observer = RichProgress(err)
        err.print(_describe(segmenter), highlight=False, markup=False, soft_wrap=True)
    if ray_address is None:
        report = run_folder(segmenter, images, out_dir, save=kinds, force=force, observer=observer,
                            batch_size=batch, request=request)
    else:
        from rns.run.ray_run import run_folder_on_ray

        report = run_folder_on_ray(segmenter, images, out_dir, address=ray_address, workers=ray_workers,
                                   save=kinds, force=force, observer=observer,
                                   request=request)  # fmt: skip
    return _finish(report, images, exports, json_lines, quiet, err, segmenter)


def _finish(report: RunReport, images: list, exports: frozenset[str], json_lines: bool, quiet: bool,
            err: Console, segmenter: object | None = None) -> int:
    """Exports, the closing lines and the exit code. `segmenter` None: nothing was left to segment."""
    from rns.formats.run_export import export_run

    single = len(images) == 1
    exported = export_run(report.out_dir, images, report.class_names, exports,
                          failed=[failure.path for failure in report.failures]) if exports else None
    if single and report.failures:
        # One photo that cannot be read is a plain input error, as for any other command.
        raise InputError(report.failures[0].reason)
    if json_lines:
        if exported is not None:
            sys.stdout.write(json.dumps({"event": "export", **_export_json(exported)}) + "\n")
        return report.exit_code
    if segmenter is None:  # the final line said it all: every image was already done
        pass
    elif single and not quiet:
        err.print(f"{images[0].path.name}: {_describe(segmenter)}", highlight=False, markup=False,
                  soft_wrap=True)  # fmt: skip
        err.print(f"  {_shares(report)} -> {report.out_dir}", highlight=False, markup=False, soft_wrap=True)
    elif single:  # -q: only the final line
        err.print(f"{images[0].path.name}: {_shares(report)} -> {report.out_dir}", highlight=False,
                  markup=False, soft_wrap=True)
    _print_failures(report, err)
    if exported is not None and not quiet:
        for kind, path in exported.paths.items():
            err.print(f"export {kind}: {path} ({exported.images} images, {exported.instances} instances)",
                      highlight=False, markup=False, soft_wrap=True)
    return report.exit_code


def _export_json(exported: ExportReport) -> dict[str, object]:
    return {"paths": {kind: str(path) for kind, path in exported.paths.items()}, "images": exported.images,
            "instances": exported.instances}


def _describe(segmenter) -> str:
    info = segmenter.describe()
    mode = "zero-shot" if info["mode"] == "zero-shot" else f"RNS, {info['memory_prototypes']} prototypes"
    return (f"{mode} | {info['model']} ({info['weights']}) on {info['device']} | "
            f"classes: {', '.join(segmenter.class_names)}")


def _shares(report: RunReport) -> str:
    return ", ".join(f"{name} {share:.1f}%" for name, share in report.class_shares().items())


def _print_failures(report: RunReport, console: Console) -> None:
    """The end-of-run table of failures (also in quiet mode: they decide the exit code)."""
    if not report.failures:
        return
    from rich.table import Table

    table = Table(title=f"{report.failed} image(s) failed", title_justify="left")
    table.add_column("file", overflow="fold")
    table.add_column("reason", overflow="fold")
    for failure in report.failures:
        table.add_row(str(failure.path), failure.reason)
    console.print(table)
