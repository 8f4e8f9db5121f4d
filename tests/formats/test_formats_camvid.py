"""Round trip on real data: CamVid masks written as COCO and as YOLO-seg by rns's own writers, read back.

COCO (RLE) must give back every class's pixels exactly, and the memory taught from it must hold the very
prototypes taught from the original masks. YOLO (polygons) must give back each instance of 100 pixels
or more with IoU >= 0.98, and prototypes that differ only as much as those few boundary pixels allow.
Features come from the tiny random test model: the check is that the same pixels reach the memory.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pycocotools", reason="the formats extra is not installed: pip install 'rns[formats]'")
pytest.importorskip("cv2", reason="the formats extra is not installed: pip install 'rns[formats]'")

from pycocotools.coco import COCO  # noqa: E402
from shared_data import CAMVID  # RNS_SHARED, else ../shared

from rns.formats.coco import Category, ExportImage, coco_document, read_coco  # noqa: E402
from rns.formats.instances import connected_instances, fill_polygon  # noqa: E402
from rns.formats.items import ItemProblem  # noqa: E402
from rns.formats.teach import add_imported  # noqa: E402
from rns.formats.yolo import YoloImage, read_yolo, write_dataset  # noqa: E402
from rns.io.imageio import load_mask  # noqa: E402
from rns.teach.mask_conventions import LabelMapping  # noqa: E402
from rns.teach.support import add_supports  # noqa: E402
from support_memory import SupportMemory  # noqa: E402

NUM_IMAGES = 6  # spread over the train split: about 140 instances of 100 px or more, holes and all
MIN_INSTANCE = 100
MIN_IOU = 0.98

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def camvid() -> tuple[list[str], list[tuple[Path, Path]]]:
    if not (CAMVID / "classes.txt").is_file():
        pytest.skip(f"CamVid not found at {CAMVID} (RNS_SHARED=DIR: the folder with data/)")
    names = LabelMapping.from_classes_file(CAMVID / "classes.txt").class_names
    images = sorted((CAMVID / "train" / "images").glob("*.jpg"))
    chosen = images[:: max(1, len(images) // NUM_IMAGES)][:NUM_IMAGES]
    return names, [(image, CAMVID / "train" / "masks" / f"{image.stem}.png") for image in chosen]


def read_items(imported) -> dict[str, np.ndarray]:
    masks: dict[str, np.ndarray] = {}
    for entry in imported.entries():
        assert not isinstance(entry, ItemProblem), str(entry)
        masks[Path(entry.image).stem] = entry.mask
    return masks


def memory_prototypes(path: Path) -> dict[tuple[str, str], tuple[str, np.ndarray]]:
    """{(source id, class name): (content key, prototype)} of a memory."""
    memory = SupportMemory.open(path, create=False)
    names = {info.id: info.name for info in memory.classes()}
    result = {}
    for source in memory.sources():
        vectors, class_ids = memory.rows(memory.source_rows(source.source_id))
        for vector, class_id in zip(vectors, class_ids, strict=True):
            result[(source.source_id, names[int(class_id)])] = (source.content_key, vector)
    return result


@pytest.fixture(scope="module")
def direct_memory(camvid, tiny_backbone, tmp_path_factory) -> Path:
    """The memory taught from the original masks, the usual way."""
    names, pairs = camvid
    path = tmp_path_factory.mktemp("direct") / "memory.zarr"
    add_supports(tiny_backbone, SupportMemory.open(path), pairs, LabelMapping.from_classes_file(
        CAMVID / "classes.txt"))
    return path


def test_coco_round_trip_is_exact(camvid, tiny_backbone, direct_memory: Path, tmp_path: Path) -> None:
    names, pairs = camvid
    originals = {image.stem: load_mask(mask) for image, mask in pairs}
    categories = [Category(id=i + 1, name=name, value=i) for i, name in enumerate(names)]
    exported = [ExportImage(image.name, originals[image.stem]) for image, _ in pairs]
    document = coco_document(exported, categories)
    coco_file = tmp_path / "camvid.json"
    coco_file.write_text(json.dumps(document))
    assert len(COCO(str(coco_file)).getAnnIds()) == len(document["annotations"]) > 100

    imported = read_coco(coco_file, CAMVID / "train" / "images")
    assert imported.class_names == names
    for stem, mask in read_items(imported).items():
        np.testing.assert_array_equal(mask, originals[stem])  # every class's pixels, and the 255s

    # Taught from the COCO file, the memory holds the same prototypes as taught from the masks.
    from_coco = tmp_path / "memory.zarr"
    report = add_imported(imported, from_coco, lambda: tiny_backbone)
    assert report.exit_code == 0 and report.added.count("added") == len(pairs)
    expected, got = memory_prototypes(direct_memory), memory_prototypes(from_coco)
    assert sorted(got) == sorted(expected)
    for key, (content_key, vector) in expected.items():
        assert got[key][0] == content_key
        np.testing.assert_array_equal(got[key][1], vector)
    # And adding the COCO import to the memory taught from the masks changes nothing.
    again = add_imported(imported, direct_memory, lambda: tiny_backbone)
    assert again.added.count("unchanged") == len(pairs)


def test_yolo_round_trip_keeps_every_instance(camvid, tiny_backbone, direct_memory: Path, tmp_path: Path,
                                              capsys) -> None:
    names, pairs = camvid
    originals = {image.stem: load_mask(mask) for image, mask in pairs}
    classes = list(enumerate(names))
    entries = (YoloImage(image, image.name, originals[image.stem]) for image, _ in pairs)
    folder, count, _ = write_dataset(tmp_path / "yolo", entries, classes)
    assert count == len(pairs)

    ious: list[float] = []
    for image, _ in pairs:
        truth = originals[image.stem]
        height, width = truth.shape
        polygons: dict[int, list[np.ndarray]] = {}
        for line in (folder / "labels" / f"{image.stem}.txt").read_text().splitlines():
            values = line.split()
            points = np.array(values[1:], dtype=np.float64).reshape(-1, 2) * [width, height]
            polygons.setdefault(int(values[0]), []).append(fill_polygon(points, height, width))
        for instance in connected_instances(truth, range(len(names))):
            if instance.area < MIN_INSTANCE:
                continue
            best = max(
                (np.logical_and(p, instance.mask).sum() / np.logical_or(p, instance.mask).sum()
                 for p in polygons.get(instance.value, [])), default=0.0,
            )
            ious.append(best)
    with capsys.disabled():
        print(f"\nYOLO round trip: {len(ious)} instances >= {MIN_INSTANCE} px, IoU min {min(ious):.4f}, "
              f"mean {np.mean(ious):.4f}")
    assert len(ious) > 50 and min(ious) >= MIN_IOU

    imported = read_yolo(folder)
    assert imported.class_names == names
    masks = read_items(imported)
    for stem, truth in originals.items():
        for value in range(len(names)):
            a, b = masks[stem] == value, truth == value
            if b.sum() >= MIN_INSTANCE:
                assert (a & b).sum() / (a | b).sum() >= MIN_IOU, (stem, names[value])

    from_yolo = tmp_path / "memory.zarr"
    assert add_imported(imported, from_yolo, lambda: tiny_backbone).added.count("added") == len(pairs)
    expected, got = memory_prototypes(direct_memory), memory_prototypes(from_yolo)
    assert sorted(got) == sorted(expected)
    cosines = [float(got[key][1] @ vector / np.linalg.norm(got[key][1]) / np.linalg.norm(vector))
               for key, (_, vector) in expected.items()]
    with capsys.disabled():
        print(f"YOLO round trip: prototype cosine to the original's, min {min(cosines):.5f}")
    assert min(cosines) >= 0.99
