"""Issue 12 items 3 and 4: the memory's entries are per (image, class), through `rns add-support`.

3: after `rns memory remove --class X`, adding the same images for X again must add them (0.1.0 said
   "N unchanged" and added nothing).
4: `add-support photo car.png --class car` then `add-support photo road.png --class road` must keep both
   (0.1.0 replaced the first).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_runner import TINY, rns
from PIL import Image
from synthetic_images import two_texture_image


def classes(memory: Path, capsys) -> dict[str, int]:
    code, out, err = rns(["memory", "list", "--json", "--memory", str(memory)], capsys)
    assert code == 0, err
    return {row["name"]: row["prototypes"] for row in json.loads(out)}


@pytest.fixture()
def photo(tmp_path: Path) -> dict[str, Path]:
    files = {"photo": tmp_path / "photo.png", "car": tmp_path / "car.png", "road": tmp_path / "road.png",
             "index": tmp_path / "index.png", "memory": tmp_path / "memory.zarr"}  # fmt: skip
    Image.fromarray(two_texture_image(3)).save(files["photo"])
    car = np.zeros((120, 160), np.uint8)
    car[:, :80] = 1
    Image.fromarray(car).save(files["car"])
    Image.fromarray(1 - car).save(files["road"])
    Image.fromarray(car + 1).save(files["index"])  # 2 = car on the left, 1 = road on the right
    return files


def test_binary_masks_of_two_classes_for_one_photo_are_both_kept(photo, capsys):
    memory = ["--memory", str(photo["memory"])]
    code, out, err = rns(["add-support", str(photo["photo"]), str(photo["car"]), "--class", "car", *memory,
                          *TINY], capsys)  # fmt: skip
    assert code == 0, err
    code, out, err = rns(["add-support", str(photo["photo"]), str(photo["road"]), "--class", "road", *memory,
                          *TINY], capsys)  # fmt: skip
    assert code == 0, err
    assert "1 added" in out
    assert classes(photo["memory"], capsys) == {"car": 1, "road": 1}
    # The same road mask again changes nothing; a new car mask replaces only the car entry.
    code, out, _ = rns(["add-support", str(photo["photo"]), str(photo["road"]), "--class", "road", *memory,
                        *TINY], capsys)  # fmt: skip
    assert code == 0 and "1 unchanged" in out
    code, out, _ = rns(["add-support", str(photo["photo"]), str(photo["road"]), "--class", "car", *memory,
                        *TINY], capsys)  # fmt: skip
    assert code == 0 and "1 replaced" in out
    assert classes(photo["memory"], capsys) == {"car": 1, "road": 1}


def test_a_removed_class_can_be_added_again(photo, capsys):
    memory = ["--memory", str(photo["memory"])]
    add_index = ["add-support", str(photo["photo"]), str(photo["index"]), "--labels", "1=road,2=car", *memory,
                 *TINY]  # fmt: skip
    assert rns(add_index, capsys)[0] == 0
    code, _, err = rns(["memory", "remove", "--class", "car", *memory], capsys)
    assert code == 0, err
    assert classes(photo["memory"], capsys) == {"road": 1}
    code, out, err = rns(add_index, capsys)
    assert code == 0, err
    assert "0 unchanged" in out
    assert classes(photo["memory"], capsys) == {"road": 1, "car": 1}
    # and with a binary mask, after the class is gone from every image
    code, _, _ = rns(["memory", "remove", "--class", "car", *memory], capsys)
    code, out, err = rns(["add-support", str(photo["photo"]), str(photo["car"]), "--class", "car", *memory,
                          *TINY], capsys)  # fmt: skip
    assert code == 0 and "1 added" in out, out + err
    assert classes(photo["memory"], capsys) == {"road": 1, "car": 1}


def test_an_index_mask_that_no_longer_labels_a_class_removes_it_for_that_image(photo, capsys):
    memory = ["--memory", str(photo["memory"])]
    assert rns(["add-support", str(photo["photo"]), str(photo["index"]), "--labels", "1=road,2=car", *memory,
                *TINY], capsys)[0] == 0  # fmt: skip
    only_road = photo["index"].with_name("only_road.png")
    Image.fromarray(np.ones((120, 160), np.uint8)).save(only_road)
    code, out, err = rns(["add-support", str(photo["photo"]), str(only_road), "--labels", "1=road,2=car",
                          *memory, *TINY], capsys)  # fmt: skip
    assert code == 0 and "1 replaced" in out, err
    assert classes(photo["memory"], capsys) == {"road": 1}


def test_an_image_stored_as_one_entry_gives_up_only_the_classes_a_new_mask_speaks_for(tmp_path):
    """Before per-class entries a memory kept one entry per image (id = its hash); re-adding a class
    replaces just that class's rows of it."""
    from support_fakes import FakeBackbone, index_mask, write_image, write_mask

    from rns.io.imageio import image_content_hash
    from rns.teach.mask_conventions import LabelMapping
    from rns.teach.support import add_supports
    from support_memory import SupportMemory

    image = write_image(tmp_path / "street.png", 0)
    both = write_mask(tmp_path / "both.png", index_mask())
    memory = SupportMemory.open(tmp_path / "memory.zarr")
    backbone = FakeBackbone()
    add_supports(backbone, memory, [(image, both)], LabelMapping.parse("0=road,1=bus"))
    # Rewrite it as it was stored before: one source named by the image hash holding both classes.
    legacy_id = image_content_hash(image)
    vectors, _ = memory.rows(memory.live_rows())
    names = [s.class_names[0] for s in memory.sources()]
    for source in memory.sources():
        memory.remove_source(source.source_id)
    memory.put_source(legacy_id, vectors, names, fingerprint=memory.fingerprint, content_key="old")
    bus_only = write_mask(tmp_path / "bus.png", (index_mask() == 1).astype(np.uint8))
    report = add_supports(backbone, memory, [(image, bus_only)], LabelMapping.single_class("bus"))
    assert report.outcomes[0].status == "replaced"
    entries = {s.source_id: s.class_names for s in memory.sources()}
    assert entries == {legacy_id: ("road",), f"{legacy_id}#bus": ("bus",)}
    assert {c.name: c.n_prototypes for c in memory.classes()} == {"road": 1, "bus": 1}
