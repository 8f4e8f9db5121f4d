"""`add_supports` against the real support memory, with a small deterministic fake backbone."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from support_fakes import DIM, FakeBackbone, index_mask, write_image, write_mask

from rns.errors import InputError
from rns.teach.mask_conventions import LabelMapping
from rns.teach.pairing import pair_by_stem
from rns.teach.support import add_supports, add_supports_at, check_supports, image_of_source
from support_memory import FingerprintMismatchError, SupportMemory

MAPPING = LabelMapping.parse("0=road,1=bus")


@pytest.fixture
def memory(tmp_path: Path) -> SupportMemory:
    return SupportMemory.open(tmp_path / "memory.zarr")


@pytest.fixture
def pairs(tmp_path: Path) -> list[tuple[Path, Path]]:
    return [
        (
            write_image(tmp_path / f"img{i}.png", seed=i),
            write_mask(tmp_path / f"img{i}_mask.png", index_mask()),
        )
        for i in range(3)
    ]


def state(memory: SupportMemory) -> tuple:
    memory.refresh()
    stats = memory.stats()
    return (stats["n_prototypes"], stats["n_sources"], stats["commit"], memory.sources(), memory.classes())


def test_added_then_unchanged_then_replaced(memory: SupportMemory, pairs, tmp_path: Path) -> None:
    backbone = FakeBackbone()
    report = add_supports(backbone, memory, pairs, MAPPING)
    assert [o.status for o in report.outcomes] == ["added"] * 3
    assert report.classes == ["road", "bus"]
    assert {c.name: (c.n_prototypes, c.n_sources) for c in memory.classes()} == {
        "road": (3, 3),
        "bus": (3, 3),
    }

    calls = backbone.calls
    again = add_supports(backbone, memory, pairs, MAPPING)
    assert [o.status for o in again.outcomes] == ["unchanged"] * 3
    assert backbone.calls == calls  # unchanged supports are not re-extracted

    relabelled = write_mask(tmp_path / "other.png", index_mask(split=5))
    replaced = add_supports(backbone, memory, [(pairs[0][0], relabelled)], MAPPING)
    assert replaced.outcomes[0].status == "replaced"
    assert memory.stats()["n_prototypes"] == 6


def test_prototypes_are_the_area_pooled_features(memory: SupportMemory, pairs) -> None:
    backbone = FakeBackbone()
    add_supports(backbone, memory, pairs[:1], MAPPING)
    features = backbone.dense_features(Image.open(pairs[0][0]).convert("RGB"))
    # 20x15 image on a 4x4 grid; road covers columns 0..9 = patches 0, 1 exactly (5 px each) below row 2.
    ids, vectors = memory.class_prototypes()
    names = {c.id: c.name for c in memory.classes()}
    road = vectors[[names[i] for i in ids].index("road")]
    weights = np.zeros((4, 4))
    row_area = np.array([15 / 4 - 2, 15 / 4, 15 / 4, 15 / 4])  # rows 0..1 are ignore
    weights[:, :2] = row_area[:, None] * 5
    expected = torch.from_numpy(weights.ravel()).float() @ features.reshape(16, DIM)
    expected = torch.nn.functional.normalize(expected, dim=0).numpy()
    np.testing.assert_allclose(road, expected, atol=2e-3)  # the memory stores float16


def test_binary_class_with_no_text_and_with_a_prompt(memory: SupportMemory, tmp_path: Path) -> None:
    image = write_image(tmp_path / "pack.png", seed=7)
    mask = write_mask(tmp_path / "pack_mask.png", (index_mask() == 1) * 255)
    add_supports(
        FakeBackbone(),
        memory,
        [(image, mask)],
        LabelMapping.single_class("my-backpack"),
        class_texts={"my-backpack": None},
    )
    other = write_image(tmp_path / "bus.png", seed=8)
    add_supports(
        FakeBackbone(),
        memory,
        [(other, mask)],
        LabelMapping.single_class("bus"),
        class_texts={"bus": "a red double-decker bus"},
    )
    info = {c.name: c for c in memory.classes()}
    assert not info["my-backpack"].has_text and info["my-backpack"].text is None
    assert info["bus"].text == "a red double-decker bus"


def test_text_for_an_unknown_class_is_refused(memory: SupportMemory, pairs) -> None:
    with pytest.raises(InputError, match="text given for class 'car'"):
        add_supports(FakeBackbone(), memory, pairs, MAPPING, class_texts={"car": "a car"})


def _truncated(path: Path) -> Path:
    write_image(path, seed=3, size=(64, 64))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


BAD_INPUTS = {
    "mask-size": (
        lambda d: write_image(d / "x.png", 9),
        lambda d: write_mask(d / "m.png", index_mask((21, 15))),
        "mask is 21x15 but its image",
    ),
    "unmapped-values": (
        lambda d: write_image(d / "x.png", 9),
        lambda d: write_mask(d / "m.png", index_mask() + (index_mask() == 1) * 3),
        "mask values 4 have no class",
    ),
    "empty-mask": (
        lambda d: write_image(d / "x.png", 9),
        lambda d: write_mask(d / "m.png", index_mask() * 0 + 255),
        "the mask labels no pixel",
    ),
    "truncated-image": (
        lambda d: _truncated(d / "x.png"),
        lambda d: write_mask(d / "m.png", index_mask((64, 64))),
        "damaged or truncated",
    ),
    "empty-image-file": (
        lambda d: (d / "x.png").write_bytes(b"") or d / "x.png",
        lambda d: write_mask(d / "m.png", index_mask()),
        "is empty (0 bytes)",
    ),
    "empty-mask-file": (
        lambda d: write_image(d / "x.png", 9),
        lambda d: (d / "m.png").write_bytes(b"") or d / "m.png",
        "is empty (0 bytes)",
    ),
    "missing-mask": (lambda d: write_image(d / "x.png", 9), lambda d: d / "missing.png", "does not exist"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_one_bad_pair_leaves_the_memory_untouched(
    case: str, memory: SupportMemory, pairs, tmp_path: Path
) -> None:
    add_supports(FakeBackbone(), memory, pairs[:1], MAPPING)
    before = state(memory)
    make_image, make_mask, message = BAD_INPUTS[case]
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    bad = (make_image(bad_dir), make_mask(bad_dir))
    backbone = FakeBackbone()
    with pytest.raises(InputError, match=re.escape(message)) as caught:
        add_supports(backbone, memory, [pairs[1], bad, pairs[2]], MAPPING)
    assert "\n" not in str(caught.value)
    assert backbone.calls == 0
    assert state(memory) == before


def test_the_same_image_twice_in_one_call_is_refused(memory: SupportMemory, pairs, tmp_path: Path) -> None:
    copy = tmp_path / "copy.png"
    copy.write_bytes(pairs[0][0].read_bytes())
    with pytest.raises(InputError, match="same image content as"):
        add_supports(FakeBackbone(), memory, [pairs[0], (copy, pairs[1][1])], MAPPING)
    assert memory.stats()["n_sources"] == 0


def test_another_backbone_is_refused_by_the_memory(memory: SupportMemory, pairs) -> None:
    add_supports(FakeBackbone("fake"), memory, pairs[:1], MAPPING)
    before = state(memory)
    other = FakeBackbone("other")
    with pytest.raises(FingerprintMismatchError, match="other model settings"):
        add_supports(other, memory, pairs, MAPPING)
    assert state(memory) == before
    assert other.calls == 0  # refused before any feature extraction


def test_a_killed_bulk_run_keeps_finished_batches_and_resumes(memory: SupportMemory, pairs) -> None:
    with pytest.raises(KeyboardInterrupt):
        add_supports(FakeBackbone(fail_after=2), memory, pairs, MAPPING, batch_size=1)
    memory.refresh()
    stored_images = list(dict.fromkeys(image_of_source(s.source_id) for s in memory.sources()))
    assert stored_images == [s.source_id for s in check_supports(pairs[:2], MAPPING)]
    resumed = add_supports(FakeBackbone(), memory, pairs, MAPPING, batch_size=1)
    assert [o.status for o in resumed.outcomes] == ["unchanged", "unchanged", "added"]


def test_progress_reports_both_stages(memory: SupportMemory, pairs) -> None:
    seen: list[tuple[str, int, int]] = []
    add_supports(FakeBackbone(), memory, pairs, MAPPING, progress=lambda *event: seen.append(event))
    assert seen == [("checking", i, 3) for i in (1, 2, 3)] + [("extracting", i, 3) for i in (1, 2, 3)]


def test_pair_by_stem(tmp_path: Path) -> None:
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    for stem in ("b", "a"):
        write_image(images / f"{stem}.jpg", seed=1)
        write_mask(masks / f"{stem}.png", index_mask())
    (images / "notes.txt").write_text("not an image")
    assert pair_by_stem(images, masks) == [
        (images / "a.jpg", masks / "a.png"),
        (images / "b.jpg", masks / "b.png"),
    ]
    write_image(images / "c.jpg", seed=2)
    write_mask(masks / "d.png", index_mask())
    with pytest.raises(
        InputError, match=r"images with no mask: 1 in .*\(c\); masks with no image: 1 in .*\(d\)"
    ):
        pair_by_stem(images, masks)
    write_image(images / "a.png", seed=3)
    with pytest.raises(InputError, match="two files named 'a'"):
        pair_by_stem(images, masks)


def test_add_supports_at_a_location_loads_the_model_only_after_the_checks(pairs, tmp_path: Path) -> None:
    loads: list[int] = []

    def load_backbone() -> FakeBackbone:
        loads.append(1)
        return FakeBackbone()

    location = tmp_path / "new-memory"
    bad = [(pairs[0][0], tmp_path / "no-such-mask.png")]
    with pytest.raises(InputError):
        add_supports_at(location, bad, MAPPING, load_backbone)
    assert loads == [] and not location.exists()  # a typo costs no model load and creates nothing

    report = add_supports_at(location, pairs, MAPPING, load_backbone)
    assert loads == [1]
    assert [o.status for o in report.outcomes] == ["added"] * 3
    assert {c.name for c in SupportMemory.open(location, create=False).classes()} == {"road", "bus"}
