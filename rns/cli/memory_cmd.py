"""`rns memory ...`: look into, prune and export the support memory (a shell over `support_memory`)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from rns.cli.group import cli, memory_option
from rns.errors import InputError
from rns.paths import default_memory_path

_NO_TEXT = "(no text)"


def _open(memory_path: str | None, *, load: bool = True):
    """The existing memory (never created by a command that only reads or removes)."""
    from rns.teach.memory_access import open_existing_memory

    return open_existing_memory(default_memory_path(memory_path), load=load)


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
      rns memory reindex
      rns memory check
      rns memory repair
    """


@memory_group.command("list")
@click.option("--sources", "per_source", is_flag=True,
              help="List the support images instead: path given, classes, time added.")
@memory_option
@json_option
def list_command(per_source: bool, memory_path: str | None, as_json: bool) -> None:
    """List the classes in the memory: prototypes, source images and text prompt.

    \b
    Examples:
      rns memory list --memory ./memory.zarr
      rns memory list --sources
    """
    memory = _open(memory_path)
    if per_source:
        _list_sources(memory, as_json)
        return
    classes = memory.classes()
    if as_json:
        rows = [
            {"name": c.name, "text": c.text if c.has_text else None, "has_text": c.has_text,
             "prototypes": c.n_prototypes, "images": c.n_sources}
            for c in classes
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    if not classes:
        click.echo("the memory holds no classes yet; add some with: rns add-support IMAGE MASK --class NAME")
        return
    table = [("class", "prototypes", "images", "text")] + [
        (c.name, str(c.n_prototypes), str(c.n_sources), c.text if c.has_text else _NO_TEXT) for c in classes
    ]
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    for name, prototypes, sources, text in table:
        click.echo(f"{name:<{widths[0]}}  {prototypes:>{widths[1]}}  {sources:>{widths[2]}}  {text}")


def _list_sources(memory, as_json: bool) -> None:
    """One line per entry (an image's labels of one class): image as given, classes, prototypes, added."""
    from rns.teach.memory_sources import source_rows

    rows = source_rows(memory)
    if as_json:
        click.echo(json.dumps([row.to_json() for row in rows], indent=2))
        return
    if not rows:
        click.echo("the memory holds no support images yet; add some with: rns add-support IMAGE MASK ...")
        return
    for row in rows:
        image = row.image or f"(image {row.source_id.split('#')[0]}, path not recorded)"
        added = row.added or "time not recorded"
        audit = f"  {row.audit_text()}" if row.audit else ""
        click.echo(f"{image}  {', '.join(row.classes)}  {row.prototypes} prototype(s)  added {added}{audit}  "
                   f"[id {row.source_id}]")  # fmt: skip


@memory_group.command("stats")
@memory_option
@json_option
def stats_command(memory_path: str | None, as_json: bool) -> None:
    """Sizes of the memory: prototypes, classes, support images, dimension, fingerprint, bytes on disk.

    `n_support_images` counts the photos added; `n_entries` counts what the memory keeps per photo and
    class (a photo labelling 3 classes is 3 entries, each removable on its own).

    \b
    Example:
      rns memory stats --json
    """
    memory = _open(memory_path)
    stats = _user_named_stats(memory)
    if as_json:
        click.echo(json.dumps(stats, indent=2, default=str))
        return
    for key, value in stats.items():
        shown = json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else value
        click.echo(f"{key}: {shown}")


def _user_named_stats(memory) -> dict[str, object]:
    """The store's stats in the words the rest of rns uses: support images, and entries (image x class)."""
    from rns.teach.support_ids import image_of_source

    stats = dict(memory.stats())
    entries = stats.pop("n_sources")
    images = len({image_of_source(info.source_id) for info in memory.sources()})
    named: dict[str, object] = {}
    for key, value in stats.items():
        named[key] = value
        if key == "n_classes":
            named["n_support_images"] = images
            named["n_entries"] = entries
    return named


@memory_group.command("remove")
@click.option("--source", "sources", multiple=True, metavar="ID|IMAGE",
              help="A support image: its file, the path `rns memory list --sources` shows, or an id "
                   "from there.")
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
    from rns.teach.memory_sources import resolve_source

    memory = _open(memory_path)
    known = {info.name.casefold(): info for info in memory.classes()}
    resolved = {given: resolve_source(memory, given) for given in sources}
    # Every name is checked before anything is removed, so a typo in the last one removes nothing.
    unknown = [f"source {given!r}" for given, found in resolved.items() if not found]
    unknown += [f"class {name!r}" for name in class_names if name.casefold() not in known]
    if unknown:
        raise InputError(f"memory {memory.path} has no {', '.join(unknown)}; nothing was removed (see "
                         "`rns memory list`, and `rns memory list --sources` for images and ids)")
    for given, found in resolved.items():
        for info in found:
            memory.remove_source(info.source_id)
        classes = ", ".join(dict.fromkeys(name for info in found for name in info.class_names))
        click.echo(f"removed source {given} ({sum(i.n_prototypes for i in found)} prototypes: {classes})")
    for name in class_names:
        info = known[name.casefold()]
        memory.remove_class(info.name)
        click.echo(f"removed class {info.name} ({info.n_prototypes} prototypes from {info.n_sources} "
                   "support image(s))")


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
    from rns.teach.memory_export import export_npz

    summary = export_npz(_open(memory_path), file)
    click.echo(f"exported {summary.n_rows} prototypes of {summary.n_classes} classes to {file}")


@memory_group.command("reindex")
@memory_option
def reindex_command(memory_path: str | None) -> None:
    """Train the approximate search index afresh on today's prototypes, and save it.

    Adds extend the saved index without rewriting it; once the prototypes have doubled since it was
    trained, a search rebuilds it in the background. This does it now (e.g. after a large import, or on
    a schedule for a shared memory). Searches use the index only from 200,000 prototypes (needs faiss:
    pip install 'rns[faiss]').

    \b
    Example:
      rns memory reindex --memory s3://team-bucket/rns/memory
    """
    from rns.teach.memory_access import reindex

    described = reindex(_open(memory_path))
    click.echo(f"index: {described['factory']}, {described['n_indexed']} prototypes")


@memory_group.command("check")
@memory_option
@json_option
def check_command(memory_path: str | None, as_json: bool) -> int:
    """Verify the whole memory: every commit record its state needs, and every stored prototype.

    Reads every prototype (a pass over the memory). Exits 0 when nothing is damaged, 1 with one line per
    damaged part otherwise; `rns memory repair` then keeps every intact image.

    \b
    Example:
      rns memory check --memory ./memory
    """
    memory = _open(memory_path, load=False)
    damage = memory.diagnose()
    if as_json:
        click.echo(json.dumps({"memory": str(memory.location), "clean": not damage,
                               "damage": [{"part": d.part, "problem": d.problem} for d in damage]}, indent=2))
        return 1 if damage else 0
    if not damage:
        click.echo(f"memory {memory.location}: nothing is damaged (commit {memory.commit}, "
                   f"{memory.n_prototypes} prototypes checked)")  # fmt: skip
        return 0
    for item in damage:
        click.echo(f"damaged: {item.part}: {item.problem}")
    click.echo(f"{len(damage)} damaged part(s) in memory {memory.location}; `rns memory repair --memory "
               f"{memory.location}` writes a commit keeping every intact image (it deletes nothing)")
    return 1


@memory_group.command("repair")
@memory_option
def repair_command(memory_path: str | None) -> None:
    """Write a new commit that keeps every intact support image and drops the damaged ones.

    Prints what it dropped and why. It deletes nothing: damaged files stay where they are (listed in a
    report under the memory's damaged/ folder, and never collected), so whatever a person could still
    recover from them is kept. A memory with nothing damaged is left as it is.

    \b
    Example:
      rns memory repair --memory ./memory
    """
    memory = _open(memory_path, load=False)
    result = memory.repair()
    if result.commit is None:
        click.echo(f"memory {memory.location}: nothing is damaged; nothing was written")
        return
    for item in result.damage:
        click.echo(f"damaged: {item.part}: {item.problem}")
    for dropped in result.dropped:
        image = dropped.meta.get("image")
        shown = f"{image} [id {dropped.source_id}]" if image else dropped.source_id
        click.echo(f"dropped: {shown}: {dropped.why}")
    click.echo(f"repaired memory {memory.location}: commit {result.commit} keeps {len(result.kept)} "
               f"source(s), dropped {len(result.dropped)}; report {result.report}; "
               f"{len(result.kept_objects)} damaged or unmatched object(s) left in place")
