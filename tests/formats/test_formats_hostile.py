"""Hostile and damaged exports (issue 22, items 1 and 3-7): every reader keeps to the folders the user
named, says what is wrong with a broken item in one line, and still gives the good items.

Each test breaks item "a" of a small valid export (tests/import_datasets.py) and checks that "a" is one
problem line while "b" and "c" come through, or that a broken shared part (the class list) is one
`InputError`. Refusals of files outside the named folders must read the same whether or not the outside
file exists.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("pycocotools", reason="the formats extra is not installed: pip install 'rns[formats]'")
pytest.importorskip("cv2", reason="the formats extra is not installed: pip install 'rns[formats]'")

from cli_runner import TINY  # noqa: E402
from import_datasets import Export, build_export, opens_outside, png_declaring  # noqa: E402

from rns.errors import InputError  # noqa: E402
from rns.formats.items import ItemProblem, LabelledItem  # noqa: E402
from rns.formats.sources import open_import  # noqa: E402
from rns.teach.pairing import pair_by_stem  # noqa: E402


def read_all(export: Export) -> tuple[dict[str, LabelledItem], list[ItemProblem]]:
    """The export's items by photo stem, and its problems; no file outside the export may be opened."""
    with opens_outside(export.root) as outside:
        imported = open_import(export.request)
        entries = list(imported.entries())
    assert not outside, f"opened outside the export: {outside}"
    items = {Path(e.image).stem if isinstance(e.image, Path) else Path(e.name).stem: e
             for e in entries if isinstance(e, LabelledItem)}
    return items, [e for e in entries if isinstance(e, ItemProblem)]


def only_a_refused(export: Export) -> str:
    """The one problem of an export whose item "a" is broken; "b" and "c" must still be read."""
    items, problems = read_all(export)
    assert sorted(items) == ["b", "c"], problems
    assert len(problems) == 1 and "\n" not in str(problems[0]), problems
    return problems[0].reason


def json_edit(path: Path, change: Callable[[object], None]) -> None:
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


# ------------------------------------------------------------------- item 1: nothing outside the folders
def _point_a_at(export: Export, target: Path, how: str) -> None:
    """Make item "a" of the export refer to `target` (outside the export) by name or through a link."""
    relative = os.path.relpath(target, export.images["a"].parent)
    if how == "link":
        export.images["a"].unlink()
        export.images["a"].symlink_to(target)
    elif export.kind == "coco":
        json_edit(export.request.coco, lambda d: d["images"][0].update(
            file_name=relative if how == "relative" else str(target)))
    elif export.kind == "labelme":
        json_edit(export.root / "a.json", lambda d: d.update(
            imagePath=relative if how == "relative" else str(target)))
    else:
        raise AssertionError(how)


CASES = [("coco", "relative"), ("coco", "absolute"), ("coco", "link"), ("labelme", "relative"),
         ("labelme", "absolute"), ("labelme", "link"), ("label_studio", "link"), ("yolo", "link"),
         ("colour", "link")]


@pytest.mark.parametrize(("kind", "how"), CASES)
def test_a_file_outside_the_folder_is_refused_alike_whether_it_exists_or_not(tmp_path: Path, kind: str,
                                                                            how: str) -> None:
    reasons = []
    for name, target in (("present", "secret"), ("absent", "missing")):
        export = build_export(tmp_path / name, kind)
        _point_a_at(export, getattr(export, target), how)
        reason = only_a_refused(export)
        assert "outside" in reason, reason
        reasons.append(reason.replace(str(tmp_path / name), "ROOT").replace(target, "TARGET"))
    assert reasons[0] == reasons[1]


def test_links_to_outside_label_files_and_data_yaml_are_refused(tmp_path: Path) -> None:
    export = build_export(tmp_path, "yolo")
    (export.outside / "a.txt").write_text("0 0.1 0.1 0.9 0.1 0.9 0.9\n")
    (export.root / "labels" / "a.txt").unlink()
    (export.root / "labels" / "a.txt").symlink_to(export.outside / "a.txt")
    assert "outside" in only_a_refused(export)
    (export.outside / "data.yaml").write_text("names: [car, road]\n")
    (export.root / "data.yaml").unlink()
    (export.root / "data.yaml").symlink_to(export.outside / "data.yaml")
    with pytest.raises(InputError, match="leads outside"):
        read_all(export)


def test_a_missing_yolo_folder_or_data_yaml_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist or is not a folder: check --yolo"):
        open_import(type(build_export(tmp_path, "yolo").request)(yolo=tmp_path / "nowhere"))
    (tmp_path / "export" / "data.yaml").unlink()
    with pytest.raises(InputError, match=r"data\.yaml not found; give the folder of a YOLO dataset"):
        open_import(type(build_export(tmp_path / "other", "yolo").request)(yolo=tmp_path / "export"))


def test_a_labelme_file_linked_from_outside_is_refused(tmp_path: Path) -> None:
    export = build_export(tmp_path, "labelme")
    (export.root / "a.json").rename(export.outside / "a.json")
    (export.root / "a.json").symlink_to(export.outside / "a.json")
    assert "outside" in only_a_refused(export)


def test_plain_image_and_mask_folders_refuse_a_link_out_in_one_line(tmp_path: Path) -> None:
    export = build_export(tmp_path, "colour")
    export.images["a"].unlink()
    export.images["a"].symlink_to(export.secret)
    with pytest.raises(InputError, match=r"a\.jpg is a link to a file outside its folder") as error:
        pair_by_stem(export.request.images_dir, export.request.masks_dir)
    assert "\n" not in str(error.value)


def test_labelme_images_saved_apart_are_read_from_images_only(tmp_path: Path) -> None:
    export = build_export(tmp_path, "labelme")
    (export.root / "photos").mkdir()
    export.images["a"].rename(export.root / "photos" / "a.jpg")
    json_edit(export.root / "a.json", lambda d: d.update(imagePath="photos/a.jpg"))
    assert len(read_all(export)[0]) == 3  # inside the LabelMe folder: fine
    elsewhere = tmp_path / "photos"
    (export.root / "photos").rename(elsewhere)
    json_edit(export.root / "a.json", lambda d: d.update(imagePath="../photos/a.jpg"))
    assert "give the folder it is in with --images" in only_a_refused(export)
    export.request = type(export.request)(labelme=export.root, images_dir=elsewhere)
    with opens_outside(export.root, elsewhere) as outside:
        entries = list(open_import(export.request).entries())
    assert not outside and all(isinstance(entry, LabelledItem) for entry in entries) and len(entries) == 3


# ------------------------------------------------------------------- item 3: wrong types, one line each
def _coco_a(change: Callable[[dict], None]) -> Callable[[Export], None]:
    return lambda export: json_edit(export.request.coco, change)


def _labelme_a(change: Callable[[dict], None]) -> Callable[[Export], None]:
    return lambda export: json_edit(export.root / "a.json", change)


def _studio_a(change: Callable[[dict], None]) -> Callable[[Export], None]:
    return lambda export: json_edit(export.request.label_studio, lambda tasks: change(tasks[0]))


def _result_a(change: Callable[[dict], None]) -> Callable[[Export], None]:
    return _studio_a(lambda task: change(task["annotations"][0]["result"][0]))


WRONG_TYPES = [
    ("coco", _coco_a(lambda d: d["images"][0].update(width="48")), "'width' must be a whole number"),
    ("coco", _coco_a(lambda d: d["images"][0].update(file_name=7)), "needs a 'file_name' (text)"),
    ("coco", _coco_a(lambda d: d["annotations"][0].update(category_id="1")), "must be a whole number"),
    ("coco", _coco_a(lambda d: d["annotations"][0].update(segmentation=[["4", "4", "9", "4", "9", "9"]])),
     "must be a list of numbers"),
    ("coco", _coco_a(lambda d: d["annotations"][0].update(segmentation={"size": [32, 48], "counts": None})),
     "RLE 'counts' must be"),
    ("coco", _coco_a(lambda d: d["annotations"][0].update(segmentation={"size": [[32], 48], "counts": [1]})),
     "RLE size"),
    ("coco", _coco_a(lambda d: d["annotations"][0].update(segmentation={"size": [32, 48],
                                                                         "counts": [1, "a", 1535]})),
     "must be a list of numbers"),
    ("coco", _coco_a(lambda d: (d["images"].__setitem__(0, ["a.jpg"]), d["annotations"].pop(0))),
     "not an object"),
    ("labelme", _labelme_a(lambda d: d["shapes"][0].update(points="4,4 9,9")), "[x, y] pairs"),
    ("labelme", _labelme_a(lambda d: d["shapes"][0].update(points=[[4, 4], [9]])), "[x, y] pairs"),
    ("labelme", _labelme_a(lambda d: d.update(shapes={"0": {}})), "no 'shapes' list"),
    ("labelme", _labelme_a(lambda d: d["shapes"].__setitem__(0, 5)), "shape 1 is not an object"),
    ("labelme", _labelme_a(lambda d: d.update(imagePath=5)), "imagePath must be text"),
    ("labelme", _labelme_a(lambda d: d.update(imageData=12)), "must be base64 text"),
    ("labelme", _labelme_a(lambda d: d["shapes"][0].update(shape_type=["polygon"])), "must be text"),
    ("label_studio", _studio_a(lambda t: t.update(annotations=5)), "'annotations' must be a list"),
    ("label_studio", _result_a(lambda r: r.update(value=[1])), "'value' must be an object"),
    ("label_studio", _result_a(lambda r: r["value"].update(rectanglelabels="car")), "list of names"),
    ("label_studio", _result_a(lambda r: r.update(original_width=None)), "must be a whole number"),
    ("label_studio", _result_a(lambda r: r["value"].update(x="10")), "must be a finite number"),
    ("label_studio", _result_a(lambda r: r["value"].update(rotation=[0])), "must be a finite number"),
    ("yolo", lambda e: (e.root / "labels" / "a.txt").write_bytes(b"0 0.1 0.1 \xff\xfe 0.5 0.5\n"),
     "not UTF-8"),
    ("yolo", lambda e: ((e.root / "labels" / "a.txt").unlink(), (e.root / "labels" / "a.txt").mkdir()),
     "not a plain file"),
    ("labelme", lambda e: (e.root / "a.json").write_bytes(b'{"shapes": ["\xff\xfe"]}'), "not a readable"),
    ("labelme", lambda e: ((e.root / "a.json").unlink(), (e.root / "a.json").mkdir()), "not a plain file"),
]


@pytest.mark.parametrize(("kind", "breaking", "message"), WRONG_TYPES)
def test_a_wrongly_typed_field_is_one_problem_and_the_rest_is_read(tmp_path: Path, kind: str, breaking,
                                                                   message: str) -> None:
    export = build_export(tmp_path, kind)
    breaking(export)
    assert message in only_a_refused(export)


SHARED_PARTS = [
    ("coco", lambda e: json_edit(e.request.coco, lambda d: d["categories"][0].update(name=None)),
     "'name' must be a class name (text), not null"),
    ("coco", lambda e: json_edit(e.request.coco, lambda d: d["categories"][0].update(id="1")),
     "must be a whole number"),
    ("coco", lambda e: json_edit(e.request.coco, lambda d: d.update(categories={"1": "car"})),
     "no 'categories' list"),
    ("yolo", lambda e: (e.root / "data.yaml").write_text("names: {x: car, 1: road}\n"),
     "'names' must number the classes"),
    ("yolo", lambda e: (e.root / "data.yaml").write_text("names: [null, road]\n"),
     "must be a class name (text), not null"),
    ("yolo", lambda e: (e.root / "data.yaml").write_bytes(b"names: [car, \xff]\n"), "not readable YAML"),
    ("yolo", lambda e: (e.root / "data.yaml").write_text("names: [[car], road]\n"), "must be a class name"),
    ("colour", lambda e: e.request.labelmap.write_bytes(b"car\xff:1,2,3::\n"), "cannot read the labelmap"),
    ("colour", lambda e: e.request.labelmap.write_text(f"{'c' * 300}:1,2,3::\n"), "characters long"),
]


@pytest.mark.parametrize(("kind", "breaking", "message"), SHARED_PARTS)
def test_a_broken_class_list_is_one_line(tmp_path: Path, kind: str, breaking, message: str) -> None:
    export = build_export(tmp_path, kind)
    breaking(export)
    with pytest.raises(InputError) as error:
        read_all(export)
    assert message in str(error.value) and "\n" not in str(error.value)


# ------------------------------------------------------------ item 4: pixels counted before decoding
@pytest.mark.parametrize("kind", ["coco", "labelme", "label_studio", "yolo", "colour"])
def test_an_image_declaring_a_huge_canvas_is_refused_from_its_header(tmp_path: Path, kind: str) -> None:
    export = build_export(tmp_path, kind)
    bomb = png_declaring(50_000, 50_000)
    if kind == "labelme":
        import base64

        json_edit(export.root / "a.json", lambda d: d.update(imageData=base64.b64encode(bomb).decode()))
    else:
        export.images["a"].write_bytes(bomb)
    reason = only_a_refused(export)
    assert "too large" in reason and "limit 100,000,000 pixels" in reason


def test_a_huge_colour_mask_is_refused_before_its_pixels_are_decoded(tmp_path: Path) -> None:
    import tracemalloc

    export = build_export(tmp_path, "colour")
    (export.request.masks_dir / "a.png").write_bytes(png_declaring(12_000, 12_000))
    tracemalloc.start()
    try:
        reason = only_a_refused(export)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "a.png is too large (12000x12000 pixels, limit 100,000,000 pixels)" in reason
    assert peak < 50 << 20, f"{peak / 2**20:.0f} MiB traced"  # numpy allocations are traced


# ------------------------------------------------------------------------- items 5 and 6: nesting, YAML
@pytest.mark.parametrize("depth", [100_000, 500])
@pytest.mark.parametrize("kind", ["coco", "label_studio"])
def test_json_nested_deep_is_one_line(tmp_path: Path, kind: str, depth: int) -> None:
    export = build_export(tmp_path, kind)
    path = export.request.coco or export.request.label_studio
    path.write_text("[" * depth + "]" * depth)
    with pytest.raises(InputError, match="nests more than 64 levels deep"):
        read_all(export)


def test_a_deep_labelme_file_is_one_problem(tmp_path: Path) -> None:
    export = build_export(tmp_path, "labelme")
    (export.root / "a.json").write_text('{"shapes": ' + "[" * 100_000 + "]" * 100_000 + "}")
    assert "nests more than 64 levels deep" in only_a_refused(export)


def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path: Path) -> None:
    export = build_export(tmp_path, "yolo")
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"{chr(98 + i)}: &{chr(98 + i)} [{','.join([f'*{chr(97 + i)}'] * 9)}]" for i in range(8)]
    (export.root / "data.yaml").write_text("\n".join(lines) + "\nnames: *i\n")
    assert len((export.root / "data.yaml").read_bytes()) < 500
    started = time.monotonic()
    with pytest.raises(InputError, match="aliases"):
        read_all(export)
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(("name_length", "message"), [(300_000, "characters long"),
                                                      (7_000_000, "over 1,048,576 bytes")])
def test_a_huge_class_name_is_refused(tmp_path: Path, name_length: int, message: str) -> None:
    export = build_export(tmp_path, "yolo")
    (export.root / "data.yaml").write_text(f"names: [{'x' * name_length}, road]\n")
    with pytest.raises(InputError, match=message):
        read_all(export)


# ------------------------------------------------------------------------- item 7: ids, values, nulls
def test_coco_duplicate_image_ids_refuse_both_images(tmp_path: Path) -> None:
    export = build_export(tmp_path, "coco")
    json_edit(export.request.coco, lambda d: d["images"][1].update(id=1))
    items, problems = read_all(export)
    assert sorted(items) == ["c"]
    assert sum("2 images have id 1" in problem.reason for problem in problems) == 2
    assert "annotations 2 refer to image ids not in 'images'" in problems[-1].reason  # b's, now orphaned


def test_coco_duplicate_category_ids_are_refused(tmp_path: Path) -> None:
    export = build_export(tmp_path, "coco")
    json_edit(export.request.coco, lambda d: d["categories"][1].update(id=1))
    with pytest.raises(InputError, match="two categories have id 1"):
        read_all(export)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-0.2", "1.5", "1e309"])
def test_yolo_coordinates_outside_0_to_1_are_refused(tmp_path: Path, value: str) -> None:
    export = build_export(tmp_path, "yolo")
    (export.root / "labels" / "a.txt").write_text(f"0 0.1 0.1 {value} 0.1 0.9 0.9\n")
    assert "coordinates must be numbers from 0 to 1" in only_a_refused(export)


@pytest.mark.parametrize("kind", ["labelme", "label_studio"])
def test_a_null_label_is_refused_not_a_class_named_none(tmp_path: Path, kind: str) -> None:
    export = build_export(tmp_path, kind)
    if kind == "labelme":
        json_edit(export.root / "a.json", lambda d: d["shapes"][0].update(label=None))
    else:
        _result_a(lambda r: r["value"].update(rectanglelabels=[None]))(export)
    assert "must be a class name (text), not null" in only_a_refused(export)
    assert open_import(export.request).class_names == ["road", "car"] if kind == "labelme" else True


# ------------------------------------------------------------------------------ the command, end to end


def test_add_support_refuses_the_outside_photo_adds_the_rest_and_exits_1(tmp_path: Path, capsys) -> None:
    from rns.cli import cli
    from rns.cli.errors import run_with_user_errors
    from rns.io.imageio import image_content_hash
    from support_memory import SupportMemory

    export = build_export(tmp_path, "coco")
    _point_a_at(export, export.secret, "relative")
    memory = tmp_path / "memory.zarr"
    argv = ["add-support", "--coco", export.request.coco, "--images", export.request.images_dir, "--memory",
            memory, *TINY]
    code = run_with_user_errors(cli, [str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 1, err
    assert "2 image(s): 2 added" in out and err.count("problem: ") == 1 and "leads outside" in err
    stored = {s.source_id.split("#")[0] for s in SupportMemory.open(memory, create=False).sources()}
    assert image_content_hash(export.secret) not in stored and len(stored) == 2

    export.images["b"].unlink()
    export.images["b"].symlink_to(export.secret)  # plain folders: all or nothing, as add-support always is
    plain = tmp_path / "plain.zarr"
    argv = ["add-support", "--images", export.request.images_dir, "--masks", export.request.images_dir,
            "--labels", "0=car", "--memory", plain, *TINY]
    code = run_with_user_errors(cli, [str(a) for a in argv])
    _, err = capsys.readouterr()
    assert code == 2 and "b.jpg is a link to a file outside its folder" in err
    assert len(err.strip().splitlines()) == 1 and not plain.exists()
