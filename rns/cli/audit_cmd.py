"""`rns memory audit`: which support examples help the photos that retrieve them, which hurt, and why."""

from __future__ import annotations

from pathlib import Path

import click

from rns.cli.group import backbone_options, memory_option
from rns.cli.memory_cmd import memory_group
from rns.paths import default_memory_path


@memory_group.command("audit")
@memory_option
@backbone_options
@click.option("--json", "as_json", is_flag=True, help="Print the whole report as JSON instead of a table.")
@click.option("--sheet", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="FILE",
              help="Also write a PNG contact sheet of the worst entries (photo with the mask tinted).")
@click.option("--threshold", type=click.FloatRange(min=0.0), default=None, metavar="POINTS",
              help="Flag entries that cost the photos retrieving them at least this many IoU points on "
                   "average (default 0.5).")
@click.option("--min-evidence", type=click.IntRange(min=1), default=None, metavar="N",
              help="Flag only entries that at least N other support photos retrieve (default 2).")
@click.option("--entries-only", is_flag=True,
              help="Flag single entries only, never all the examples of a photo that hurt together.")
@click.option("--apply", "apply_", is_flag=True,
              help="Record the scores in the memory (one commit); demote the flagged entries in retrieval.")
@click.option("--weight", type=click.FloatRange(min=0.0, max=1.0, max_open=True), default=0.0,
              show_default=True, help="With --apply: the flagged entries' retrieval weight (0 = excluded).")
@click.option("--solver", type=click.Choice(["fast", "adamw"]), default="fast", show_default=True,
              help="Head fit of the audit's segmentations: fast (70 steps, ~10x cheaper) or adamw (the "
                   "700 steps segmenting uses).")
@click.option("--no-background", "no_background", is_flag=True,
              help="Segment with no background class (masks that label every pixel, e.g. CamVid).")
def audit_command(memory_path: str | None, model: str | None, pretrained: str | None,
                  checkpoint: str | None, variant: str | None, device: str, as_json: bool, sheet: Path | None,
                  threshold: float | None, min_evidence: int | None, entries_only: bool, apply_: bool,
                  weight: float, solver: str, no_background: bool) -> None:
    """Leave-one-out over the memory's support photos: score every entry, list those that hurt.

    Each support photo (read again from the path it was added from; photos gone are skipped and
    counted) is segmented with the rest of the memory, then once more per entry it retrieves with that
    entry left out. An entry's score is the mean IoU change, in points, of the photos that retrieve it
    (positive: it helps). Nothing changes without --apply; `rns memory remove` deletes.

    \b
    Examples:
      rns memory audit
      rns memory audit --json --sheet worst.png
      rns memory audit --apply              # exclude the flagged entries from retrieval
    """
    from rns.audit.apply import apply_audit
    from rns.audit.report import DEFAULT_MIN_EVIDENCE, DEFAULT_THRESHOLD
    from rns.audit.run import audit_memory
    from rns.backbone import build_backbone
    from rns.segment.pipeline import SegmentOptions
    from rns.teach.memory_access import open_existing_memory

    memory = open_existing_memory(default_memory_path(memory_path))
    if apply_:
        memory.check_writable()  # before minutes of work, not after
    backbone = build_backbone(model=model, pretrained=pretrained, checkpoint=checkpoint, variant=variant,
                              device=device)  # fmt: skip
    report = audit_memory(
        memory, backbone, options=SegmentOptions(background=not no_background),
        threshold=DEFAULT_THRESHOLD if threshold is None else threshold,
        min_evidence=DEFAULT_MIN_EVIDENCE if min_evidence is None else min_evidence, solver=solver,
    )
    report.whole_photos = not entries_only
    click.echo(report.dumps() if as_json else report.table(), nl=True)
    if sheet is not None:
        from rns.audit.sheet import write_sheet

        labels = {info.source_id: info.meta.get("labels") for info in memory.sources()}
        shown = write_sheet(sheet, report.hurting() or report.ranked(), labels)
        click.echo(f"contact sheet of {shown} entries written to {sheet}", err=as_json)
    if apply_:
        demoted = apply_audit(memory, report, weight=weight)
        action = "excluded from retrieval" if weight == 0 else f"demoted to weight {weight:g}"
        click.echo(f"applied: scores recorded for {len(report.entries)} entries, {demoted} {action} "
                   f"(commit {memory.commit}); see rns memory list --sources", err=as_json)
