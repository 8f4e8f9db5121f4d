"""Fuzzing every import reader (issue 22): random mutations of a small valid export, seeded and bounded.

Each case breaks item "a" of an export (tests/import_datasets.py) or a part every item shares (the class
list, the whole file's bytes), in one random way: a JSON value replaced by a hostile one (null, NaN, a
huge number, text for a number, `../outside/secret.jpg`, an absolute path, a deep list), bytes flipped or
cut, a token of a text file replaced, a file swapped for a link out of the export, a folder, or a PNG
declaring 50000x50000 pixels. Whatever happens:

- the import ends in items and one-line problems, or one `InputError`; never another exception;
- no file outside the export is opened (an audit hook watches every `open`);
- when only item "a" was touched, items "b" and "c" come through with exactly their original labels;
- for a few cases per reader, the whole teaching path runs (a fake backbone, a real memory): either the
  memory is left as it was (not created) or it holds b and c.

The number of cases is bounded (at most `CASES` per reader, stopping after `SECONDS`), so a slow machine
runs fewer; at least `MIN_CASES` must run. A failure names the seed, the case and the mutation.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pycocotools", reason="the formats extra is not installed: pip install 'rns[formats]'")
pytest.importorskip("cv2", reason="the formats extra is not installed: pip install 'rns[formats]'")

from import_datasets import DATA, KINDS, Export, build_export, opens_outside, png_declaring  # noqa: E402
from support_fakes import FakeBackbone  # noqa: E402

from rns.errors import InputError  # noqa: E402
from rns.formats.items import ItemProblem, LabelledItem  # noqa: E402
from rns.formats.sources import open_import  # noqa: E402
from rns.formats.teach import add_imported  # noqa: E402
from rns.io.imageio import image_content_hash  # noqa: E402

CASES = 150
SECONDS = 3.0
MIN_CASES = 20
MEMORY_CASES = 3

_DEEP: list = []
for _ in range(80):  # deeper than any reader accepts, shallow enough for Python's JSON parser
    _DEEP = [_DEEP]

HOSTILE_JSON = [None, True, False, -1, 0, 1.5, 1e308, math.nan, math.inf, 2**70, "", "1", "x" * 5000,
                "../outside/secret.jpg", "../../outside/secret.jpg", "SECRET", "/etc/passwd", [], {},
                [1, "a"], [[1, 2], [3]], {"a": None}, _DEEP, [[4, 4], [900, 4], [900, 900]], [-5, -5]]
HOSTILE_TOKENS = ["nan", "inf", "-1", "1.5", "1e309", "", "x" * 300, "null", "*a", "&a", "{", "[", "~",
                  "../outside/secret.jpg", "99999999999999999999", "0x1", ":", ","]


def _value(rng: np.random.Generator, export: Export) -> object:
    value = HOSTILE_JSON[rng.integers(len(HOSTILE_JSON))]
    return str(export.secret) if value == "SECRET" else value


def _paths(node: object, prefix: tuple = ()) -> list[tuple]:
    found = [prefix]
    if isinstance(node, dict):
        for key, child in node.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            found += _paths(child, (*prefix, index))
    return found


def _mutate_json(document: object, within: tuple, rng: np.random.Generator, export: Export) -> str:
    """Change one node under `within` of `document` in place; returns what was done."""
    node = document
    for key in within:
        node = node[key]
    paths = _paths(node, within)
    path = paths[rng.integers(len(paths))]
    if not path:
        return "nothing"
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    operation = ("replace", "delete", "append", "retype")[rng.integers(4)]
    key = path[-1]
    if operation == "delete":
        del parent[key]
    elif operation == "append" and isinstance(parent[key], list):
        parent[key].append(_value(rng, export))
    elif operation == "retype" and isinstance(parent[key], (list, dict)):
        old = parent[key]
        parent[key] = dict(enumerate(old)) if isinstance(old, list) else list(old.values())
    else:
        operation = "replace"
        parent[key] = _value(rng, export)
    return f"{operation} {list(path)}"


def _mutate_bytes(path: Path, rng: np.random.Generator) -> str:
    data = bytearray(path.read_bytes())
    operation = ("cut", "flip", "insert", "repeat")[rng.integers(4)]
    at = int(rng.integers(max(len(data), 1)))
    if operation == "cut":
        data = data[:at]
    elif operation == "flip" and data:
        data[at] ^= 1 << int(rng.integers(8))
    elif operation == "insert":
        data[at:at] = bytes([0xFF, 0xFE, 0x00, 0x80][: 1 + int(rng.integers(4))])
    else:
        data[at:at] = data[at: at + 64] * int(rng.integers(2, 50))
    path.write_bytes(bytes(data))
    return f"{operation} bytes of {path.name} at {at}"


def _mutate_tokens(path: Path, rng: np.random.Generator) -> str:
    text = path.read_text(encoding="utf-8")
    tokens = text.replace(":", " : ").replace(",", " , ").split(" ")
    at = int(rng.integers(len(tokens)))
    tokens[at] = HOSTILE_TOKENS[rng.integers(len(HOSTILE_TOKENS))]
    path.write_text(" ".join(tokens).replace(" : ", ":").replace(" , ", ","), encoding="utf-8")
    return f"token {at} of {path.name} -> {tokens[at][:20]!r}"


def _swap_file(path: Path, rng: np.random.Generator, export: Export) -> str:
    operation = ("link-secret", "link-missing", "folder", "bomb", "empty", "garbage")[rng.integers(6)]
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
    if operation == "link-secret":
        path.symlink_to(export.secret)
    elif operation == "link-missing":
        path.symlink_to(export.missing)
    elif operation == "folder":
        path.mkdir()
    elif operation == "bomb":
        path.write_bytes(png_declaring(50_000, 50_000))
    else:
        path.write_bytes(b"" if operation == "empty" else rng.bytes(int(rng.integers(1, 400))))
    return f"{operation} at {path.name}"


def mutate(export: Export, rng: np.random.Generator) -> tuple[str, bool]:
    """Break `export` in one random way; returns what was done and whether only item "a" was touched."""
    choice = rng.random()
    kind, root = export.kind, export.root
    if kind in ("coco", "label_studio"):
        path = export.request.coco or export.request.label_studio
        if choice < 0.12:
            return _mutate_bytes(path, rng), False
        if choice < 0.25:
            return _swap_file(export.images["a"], rng, export), True
        document = json.loads(path.read_text())
        if kind == "label_studio":
            within, only_a = (0,), True
        elif choice < 0.4:
            within, only_a = ("categories",), False
        else:
            within = ("images", 0) if choice < 0.7 else ("annotations", 0)
            only_a = True
        done = _mutate_json(document, within, rng, export)
        path.write_text(json.dumps(document))
        if kind == "coco" and any(key in done for key in ("'id'", "'image_id'")):
            only_a = False  # an id changed into another image's: that image is rightly refused too
        return done, only_a
    if kind == "labelme":
        if choice < 0.2:
            return _mutate_bytes(root / "a.json", rng), True
        if choice < 0.35:
            return _swap_file(root / ("a.jpg" if choice < 0.3 else "a.json"), rng, export), True
        document = json.loads((root / "a.json").read_text())
        done = _mutate_json(document, (), rng, export)
        (root / "a.json").write_text(json.dumps(document))
        return done, True
    if kind == "yolo":
        if choice < 0.25:
            return _mutate_tokens(root / "data.yaml", rng), False
        if choice < 0.5:
            return _swap_file(root / ("images/a.jpg" if choice < 0.38 else "labels/a.txt"), rng, export), True
        if choice < 0.6:
            return _mutate_bytes(root / "labels" / "a.txt", rng), True
        return _mutate_tokens(root / "labels" / "a.txt", rng), True
    if choice < 0.25:
        return _mutate_tokens(export.request.labelmap, rng), False
    mask = export.request.masks_dir / "a.png"
    if choice < 0.55:
        return _swap_file(export.images["a"] if choice < 0.4 else mask, rng, export), True
    return _mutate_bytes(mask, rng), True


def _labels_by_name(imported, entries) -> dict[str, list]:
    """Each item's mask as class names (the class list may change order when another item changes)."""
    names = np.array([*imported.class_names, None] + [None] * (255 - len(imported.class_names)), dtype=object)
    return {Path(e.image).stem if isinstance(e.image, Path) else Path(e.name).stem: names[e.mask].tolist()
            for e in entries if isinstance(e, LabelledItem)}


def read(export: Export) -> tuple[object, list]:
    imported = open_import(export.request)
    return imported, list(imported.entries())


def _teach(export: Export, case: Path, only_a: bool) -> None:
    """The whole teaching path on the mutated export: memory unchanged, or holding only the export's
    photos, b and c among them when only item "a" was broken."""
    memory = case / "memory.zarr"
    scratch = case / "scratch"
    scratch.mkdir()
    previous, tempfile.tempdir = tempfile.tempdir, str(scratch)  # staging goes where we watch
    try:
        with opens_outside(export.root, scratch, memory) as outside:
            try:
                report = add_imported(open_import(export.request), memory, FakeBackbone, batch_size=2)
            except InputError:
                assert not memory.exists(), "a refused import left a memory behind"
                return
    finally:
        tempfile.tempdir = previous
    assert not outside, f"opened outside the export: {outside}"
    assert report.exit_code == (1 if report.problems else 0)
    if report.added.outcomes:
        from support_memory import SupportMemory

        sources = SupportMemory.open(memory, create=False).sources()
        stored = {source.source_id.split("#")[0] for source in sources}
        photos = {stem: image_content_hash(DATA / "images" / f"street{n}.jpg")
                  for n, stem in enumerate(("a", "b", "c"), start=1)}
        assert stored <= set(photos.values())  # never the outside photo
        assert not only_a or {photos["b"], photos["c"]} <= stored


@pytest.mark.parametrize("kind", KINDS)
def test_random_mutations_end_in_items_and_one_line_problems(tmp_path: Path, kind: str) -> None:
    seed = 2200 + KINDS.index(kind)
    rng = np.random.default_rng(seed)
    pristine = build_export(tmp_path / "pristine", kind)
    baseline_set, baseline_entries = read(pristine)
    baseline = _labels_by_name(baseline_set, baseline_entries)
    assert sorted(baseline) == ["a", "b", "c"]
    started, cases, taught = time.monotonic(), 0, 0
    while cases < CASES and (time.monotonic() - started < SECONDS or cases < MIN_CASES):
        case = tmp_path / f"case{cases}"
        export = build_export(case, kind)
        done, only_a = mutate(export, rng)
        where = f"seed {seed}, case {cases}: {done}"
        with opens_outside(export.root) as outside:
            try:
                imported, entries = read(export)
            except InputError as error:
                assert "\n" not in str(error), where
                imported, entries = None, []
        assert not outside, f"{where}: opened outside the export: {outside}"
        for entry in entries:
            assert isinstance(entry, (LabelledItem, ItemProblem)), where
            assert isinstance(entry, LabelledItem) or "\n" not in str(entry), where
        if imported is not None and only_a:
            labels = _labels_by_name(imported, entries)
            for stem in ("b", "c"):
                assert labels.get(stem) == baseline[stem], f"{where}: item {stem} changed or went missing"
        if imported is not None and taught < MEMORY_CASES and (cases % 7 == 3):
            _teach(export, case, only_a)
            taught += 1
        shutil.rmtree(case)
        cases += 1
    assert cases >= MIN_CASES and taught >= 1
