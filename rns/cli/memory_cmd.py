"""`rns memory ...`: look into, prune and export the support memory (a shell over `support_memory`)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from rns.cli.group import cli, memory_option
from rns.errors import InputError
from rns.paths import default_memory_path

_NO_TEXT = "(no text)"


def _open(memory_path: str | None):
    """The existing memory (never created by a command that only reads or removes)."""
    from support_memory import SupportMemory

    return SupportMemory.open(default_memory_path(memory_path), create=False)


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")


@cli.group("memory")
def memory_group() -> None:
    """Inspect and edit the support memory.

    \b
    Examples:
      rns memory list
      rns memory stats --json
      rns memory remove --class bus
      rns memory export supports.npz
    """


@memory_group.command("list")
@memory_option
@json_option
def list_command(memory_path: str | None, as_json: bool) -> None:
    """List the classes in the memory: prototypes, source images and text prompt.

    \b
    Example:
      rns memory list --memory ./memory.zarr
    """
    classes = _open(memory_path).classes()
    if as_json:
        rows = [
            {"name": c.name, "text": c.text if c.has_text else None, "has_text": c.has_text,
             "prototypes": c.n_prototypes, "sources": c.n_sources}
            for c in classes
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    if not classes:
        click.echo("the memory holds no classes yet; add some with: rns add-support IMAGE MASK --class NAME")
        return
    table = [("class", "prototypes", "sources", "text")] + [
        (c.name, str(c.n_prototypes), str(c.n_sources), c.text if c.has_text else _NO_TEXT) for c in classes
    ]
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    for name, prototypes, sources, text in table:
        click.echo(f"{name:<{widths[0]}}  {prototypes:>{widths[1]}}  {sources:>{widths[2]}}  {text}")


@memory_group.command("stats")
@memory_option
@json_option
def stats_command(memory_path: str | None, as_json: bool) -> None:
    """Sizes of the memory: prototypes, classes, sources, dimension, backbone fingerprint, bytes on disk.

    \b
    Example:
      rns memory stats --json
    """
    stats = _open(memory_path).stats()
    if as_json:
        click.echo(json.dumps(stats, indent=2, default=str))
        return
    for key, value in stats.items():
        shown = json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else value
        click.echo(f"{key}: {shown}")


@memory_group.command("remove")
@click.option("--source", "sources", multiple=True, metavar="ID|IMAGE",
              help="A source id (from `rns memory export` or add-support), or the image file itself.")
@click.option("--class", "class_names", multiple=True, metavar="NAME",
              help="A class: all its prototypes, from every source.")
@memory_option
def remove_command(sources: tuple[str, ...], class_names: tuple[str, ...], memory_path: str | None) -> None:
    """Remove sources (support images) or whole classes from the memory. Asks no questions.

    \b
    Examples:
      rns memory remove --source street.jpg
      rns memory remove --class bus --class car
    """
    if not sources and not class_names:
        raise InputError("name what to remove: --source ID|IMAGE or --class NAME (both may repeat)")
    memory = _open(memory_path)
    by_id = {info.source_id: info for info in memory.sources()}
    for given in sources:
        source_id = _source_id(given)
        info = by_id.get(source_id)
        memory.remove_source(source_id)  # raises the memory's UnknownEntryError for an id it lacks
        detail = f" ({info.n_prototypes} prototypes: {', '.join(info.class_names)})" if info else ""
        click.echo(f"removed source {source_id}{detail}")
    counts = {info.name: info for info in memory.classes()}
    for name in class_names:
        info = counts.get(name)
        memory.remove_class(name)
        detail = f" ({info.n_prototypes} prototypes from {info.n_sources} sources)" if info else ""
        click.echo(f"removed class {name}{detail}")


def _source_id(given: str) -> str:
    """A source is named by its id or by its image file (whose content hash is the id)."""
    path = Path(given)
    if path.is_file():
        from rns.imageio import image_content_hash

        return image_content_hash(path)
    return given


@memory_group.command("export")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@memory_option
def export_command(file: Path, memory_path: str | None) -> None:
    """Export every prototype to one .npz file, for use in other tools.

    The file holds `vectors` [n, d] float32 (L2-normalised per-image prototypes), `labels` [n] (index
    into `class_names`), `sources` [n] (source id of each row), `class_names`, `class_texts` ("" where
    a class has no text), `class_has_text`, and `meta_json` (fingerprint and class table as JSON). Load
    it with `numpy.load(FILE)`; no pickle is needed.

    \b
    Example:
      rns memory export supports.npz
      python -c "import numpy; print(numpy.load('supports.npz')['vectors'].shape)"
    """
    from rns.memory_export import export_npz

    summary = export_npz(_open(memory_path), file)
    click.echo(f"exported {summary.n_rows} prototypes of {summary.n_classes} classes to {file}")
