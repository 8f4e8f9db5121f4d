"""How the files in this folder were made (run once; the outputs are committed, this is provenance).

Each export copies the layout the tool writes: field names, nesting, coordinate conventions (COCO pixels,
LabelMe pixels with points lists, Label Studio percentages and its brush RLE, CVAT's labelmap.txt and RGB
masks, VOC's palette PNGs). The photos are small seeded textures; the tests check pixels placed well
inside each shape, so they do not depend on how a rasteriser treats a shape's edge.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
from label_studio_sdk.converter.brush import mask2rle
from PIL import Image
from pycocotools import mask as mask_utils

HERE = Path(__file__).parent
W, H = 48, 32


def photo(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    base = rng.integers(40, 200, size=(1, 1, 3))
    noise = rng.integers(-30, 30, size=(H, W, 3))
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))


def rect(x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    mask = np.zeros((H, W), dtype=np.uint8)
    mask[y0:y1, x0:x1] = 1
    return mask


def column_major_counts(mask: np.ndarray) -> list[int]:
    flat = mask.ravel(order="F")
    counts, current, run = [], 0, 0
    for value in flat:
        if value != current:
            counts.append(run)
            current, run = value, 0
        run += 1
    counts.append(run)
    return counts


def main() -> None:
    images = HERE / "images"
    images.mkdir(exist_ok=True)
    for index in range(1, 5):
        photo(index).save(images / f"street{index}.jpg", quality=90)

    # --- COCO (as CVAT / pycocotools write it) -------------------------------------------------------
    rle_car = mask_utils.encode(np.asfortranarray(rect(32, 22, 38, 28)))
    coco = {
        "info": {"description": "rns test export", "version": "1.0"},
        "licenses": [],
        "categories": [
            {"id": 1, "name": "person", "supercategory": "human"},
            {"id": 2, "name": "road", "supercategory": ""},
            {"id": 3, "name": "car", "supercategory": "vehicle"},
        ],
        "images": [
            {"id": 1, "file_name": "street1.jpg", "width": W, "height": H},
            {"id": 2, "file_name": "images/street2.jpg", "width": W, "height": H},
            {"id": 3, "file_name": "missing.jpg", "width": W, "height": H},
            {"id": 4, "file_name": "street3.jpg", "width": W, "height": H},
            {"id": 5, "file_name": "street4.jpg", "width": W, "height": H},
        ],
        "annotations": [
            # image 1: a car polygon, then a person polygon overlapping it (the person, later, wins)
            {"id": 1, "image_id": 1, "category_id": 3, "iscrowd": 0, "area": 160.0, "bbox": [4, 4, 16, 10],
             "segmentation": [[4, 4, 20, 4, 20, 14, 4, 14]]},
            {"id": 2, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": 144.0, "bbox": [16, 8, 12, 12],
             "segmentation": [[16, 8, 28, 8, 28, 20, 16, 20]]},
            # a car drawn on its own (compressed RLE) inside a crowd of people listed after it
            {"id": 3, "image_id": 1, "category_id": 3, "iscrowd": 0, "area": 36.0, "bbox": [32, 22, 6, 6],
             "segmentation": {"size": [H, W], "counts": rle_car["counts"].decode("ascii")}},
            {"id": 4, "image_id": 1, "category_id": 1, "iscrowd": 1, "area": 160.0, "bbox": [30, 20, 16, 10],
             "segmentation": {"size": [H, W], "counts": column_major_counts(rect(30, 20, 46, 30))}},
            # image 2: road as an uncompressed RLE without the crowd flag, a person polygon
            {"id": 5, "image_id": 2, "category_id": 2, "iscrowd": 0, "area": 480.0, "bbox": [0, 22, 48, 10],
             "segmentation": {"size": [H, W], "counts": column_major_counts(rect(0, 22, 48, 32))}},
            {"id": 6, "image_id": 2, "category_id": 1, "iscrowd": 0, "area": 60.0, "bbox": [10, 6, 6, 10],
             "segmentation": [[10, 6, 16, 6, 16, 16, 10, 16]]},
            # image 4: a category id the file does not define
            {"id": 7, "image_id": 4, "category_id": 99, "iscrowd": 0, "area": 16.0, "bbox": [2, 2, 4, 4],
             "segmentation": [[2, 2, 6, 2, 6, 6, 2, 6]]},
            # image 5: a polygon reaching far outside the 48x32 image
            {"id": 8, "image_id": 5, "category_id": 2, "iscrowd": 0, "area": 100.0, "bbox": [10, 10, 80, 10],
             "segmentation": [[10, 10, 90, 10, 90, 20, 10, 20]]},
        ],
    }
    (HERE / "coco").mkdir(exist_ok=True)
    (HERE / "coco" / "instances.json").write_text(json.dumps(coco, indent=1) + "\n")

    # --- LabelMe (5.x layout) ------------------------------------------------------------------------
    def shape(label: str, points: list, kind: str) -> dict:
        return {"label": label, "points": points, "group_id": None, "description": "", "shape_type": kind,
                "flags": {}, "mask": None}

    labelme = HERE / "labelme"
    labelme.mkdir(exist_ok=True)
    first = {
        "version": "5.4.1", "flags": {},
        "shapes": [
            shape("road", [[0.0, 20.0], [47.0, 31.0]], "rectangle"),
            shape("car", [[4.0, 4.0], [20.0, 4.0], [20.0, 14.0], [4.0, 14.0]], "polygon"),
            shape("person", [[34.0, 10.0], [34.0, 15.0]], "circle"),
            shape("person", [[40.0, 3.0]], "point"),
        ],
        "imagePath": "../images/street1.jpg", "imageData": None, "imageHeight": H, "imageWidth": W,
    }
    (labelme / "street1.json").write_text(json.dumps(first, indent=2) + "\n")
    embedded_bytes = (images / "street2.jpg").read_bytes()
    second = {
        "version": "5.4.1", "flags": {},
        "shapes": [
            shape("car", [[8.0, 8.0], [30.0, 8.0], [30.0, 24.0], [8.0, 24.0]], "polygon"),
            shape("__ignore__", [[12.0, 12.0], [18.0, 18.0]], "rectangle"),
        ],
        "imagePath": "street2_on_the_labellers_disk.jpg",
        "imageData": base64.b64encode(embedded_bytes).decode("ascii"), "imageHeight": H, "imageWidth": W,
    }
    (labelme / "street2.json").write_text(json.dumps(second, indent=2) + "\n")
    third = {
        "version": "5.4.1", "flags": {},
        "shapes": [shape("car", [[10.0, 10.0], [120.0, 10.0], [120.0, 20.0]], "polygon")],
        "imagePath": "../images/street3.jpg", "imageData": None, "imageHeight": H, "imageWidth": W,
    }
    (labelme / "street3.json").write_text(json.dumps(third, indent=2) + "\n")

    # --- CVAT "Segmentation mask 1.1" -----------------------------------------------------------------
    cvat = HERE / "cvat"
    (cvat / "JPEGImages").mkdir(parents=True, exist_ok=True)
    (cvat / "SegmentationClass").mkdir(exist_ok=True)
    (cvat / "labelmap.txt").write_text(
        "# label:color_rgb:parts:actions\nbackground:0,0,0::\ncar:250,50,83::\nroad:128,64,128::\n"
    )
    colours = np.zeros((H, W, 3), dtype=np.uint8)
    colours[20:, :] = (128, 64, 128)
    colours[5:15, 5:25] = (250, 50, 83)
    Image.fromarray(colours).save(cvat / "SegmentationClass" / "street1.png")
    unknown = colours.copy()
    unknown[0:3, 0:3] = (1, 2, 3)  # a colour the labelmap does not list
    Image.fromarray(unknown).save(cvat / "SegmentationClass" / "street2.png")
    for name in ("street1", "street2"):
        (cvat / "JPEGImages" / f"{name}.jpg").write_bytes((images / f"{name}.jpg").read_bytes())

    # --- Pascal VOC (palette PNG, border value 255) ---------------------------------------------------
    voc = HERE / "voc"
    (voc / "JPEGImages").mkdir(parents=True, exist_ok=True)
    (voc / "SegmentationClass").mkdir(exist_ok=True)
    values = np.zeros((H, W), dtype=np.uint8)
    values[4:20, 6:30] = 15  # person
    values[3, 5:31] = 255  # border
    values[22:30, 30:44] = 7  # car
    palette = []
    for index in range(256):
        r = g = b = 0
        c = index
        for shift in range(7, -1, -1):
            r |= (c & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        palette += [r, g, b]
    voc_mask = Image.fromarray(values, mode="P")
    voc_mask.putpalette(palette)
    voc_mask.save(voc / "SegmentationClass" / "2007_000032.png")
    (voc / "JPEGImages" / "2007_000032.jpg").write_bytes((images / "street3.jpg").read_bytes())

    # --- Label Studio JSON export ------------------------------------------------------------------------
    brush = rect(24, 4, 40, 16) * 255
    tasks = [
        {"id": 11, "data": {"image": "/data/upload/3/0a1b2c3d-street1.jpg"},
         "annotations": [
             {"id": 21, "was_cancelled": True, "result": []},
             {"id": 22, "was_cancelled": False, "result": [
                 {"id": "r1", "type": "polygonlabels", "from_name": "label", "to_name": "image",
                  "original_width": W, "original_height": H, "image_rotation": 0,
                  "value": {"points": [[0.0, 62.5], [100.0, 62.5], [100.0, 100.0], [0.0, 100.0]],
                            "closed": True, "polygonlabels": ["road"]}},
                 {"id": "r2", "type": "brushlabels", "from_name": "tag", "to_name": "image",
                  "original_width": W, "original_height": H, "image_rotation": 0,
                  "value": {"format": "rle", "rle": [int(v) for v in mask2rle(brush.astype(np.uint8))],
                            "brushlabels": ["car"]}},
                 {"id": "r3", "type": "choices", "from_name": "weather", "to_name": "image",
                  "value": {"choices": ["sunny"]}},
             ]}],
         "predictions": []},
        {"id": 12, "data": {"image": "/data/upload/3/deadbeef-not_uploaded.jpg"},
         "annotations": [{"id": 23, "was_cancelled": False, "result": [
             {"id": "r4", "type": "rectanglelabels", "from_name": "box", "to_name": "image",
              "original_width": W, "original_height": H, "image_rotation": 0,
              "value": {"x": 10.0, "y": 10.0, "width": 20.0, "height": 20.0, "rotation": 0,
                        "rectanglelabels": ["car"]}}]}],
         "predictions": []},
        {"id": 13, "data": {"image": "/data/local-files/?d=photos/street2.jpg"},
         "annotations": [{"id": 24, "was_cancelled": False, "result": [
             {"id": "r5", "type": "rectanglelabels", "from_name": "box", "to_name": "image",
              "original_width": W, "original_height": H, "image_rotation": 0,
              "value": {"x": 25.0, "y": 25.0, "width": 50.0, "height": 50.0, "rotation": 0,
                        "rectanglelabels": ["car"]}}]}],
         "predictions": []},
    ]
    (HERE / "label_studio").mkdir(exist_ok=True)
    (HERE / "label_studio" / "export.json").write_text(json.dumps(tasks) + "\n")


if __name__ == "__main__":
    main()
