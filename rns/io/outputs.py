"""Writing one `Segmentation` to disk, in the forms the user asked for with `--save`.

Each output kind has one writer and one file name, `<stem>.<kind suffix>`:

| kind      | file                   | what                                                              |
|-----------|------------------------|-------------------------------------------------------------------|
| `labels`  | `<stem>.labels.png`    | palette PNG (mode "P") whose pixel values are the class ids        |
| `overlay` | `<stem>.overlay.png`   | the photo with class colours blended in and a legend strip below   |
| `summary` | `<stem>.summary.json`  | classes, pixel counts and fractions, timings, model info           |
| `probs`   | `<stem>.probs.npz`     | per-class probabilities as uint8 (p * 255, rounded), compressed    |
| `rle`     | `<stem>.rle.json`      | COCO RLE (column-major, string counts) of every class present      |

Every file is written atomically (see `rns.io.atomic`), so a reader never sees half a file. Colours come
from `rns.io.palette` by class name, so they agree across files, images, runs and the ui.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from rns.io.atomic import atomic_write, atomic_write_json, fsync_directory
from rns.io.legend_font import legend_texts
from rns.io.output_specs import DEFAULT_SAVE, SAVE_KINDS, needs_probabilities, parse_save  # noqa: F401
from rns.io.palette import hex_colour, is_background, named_colours, png_palette
from rns.io.rle import encode_rle
from rns.segmentation import Segmentation

SUFFIXES: Mapping[str, str] = {
    "labels": ".labels.png",
    "overlay": ".overlay.png",
    "summary": ".summary.json",
    "probs": ".probs.npz",
    "rle": ".rle.json",
}

DEFAULT_OVERLAY_ALPHA = 0.5
IMAGE_SUMMARY_FORMAT = "rns.image-summary/1"
CLASSES_FORMAT = "rns.classes/1"
PROBS_SCALE = 255  # stored value = round(probability * 255); read back as value / 255


def output_paths(out_dir: str | os.PathLike, stem: str, save: Iterable[str]) -> dict[str, Path]:
    """Where each requested kind is written; `stem` may hold subfolders ("sub/photo")."""
    base = Path(out_dir)
    return {kind: base / f"{stem}{SUFFIXES[kind]}" for kind in SAVE_KINDS if kind in set(save)}


# --- labels -------------------------------------------------------------------------------------------


def write_labels_png(path: str | os.PathLike, seg: Segmentation, *, sync_directory: bool = True) -> Path:
    """Palette PNG of the class ids: pixel value = class id, palette = the fixed class colours.

    More than 256 classes cannot fit a palette: those are written as 16-bit greyscale PNGs of the ids.
    """
    labels = np.asarray(seg.labels)
    count = len(seg.class_names)
    if labels.size and (labels.min() < 0 or labels.max() >= count):
        raise ValueError(f"labels hold ids outside 0..{count - 1} for classes {seg.class_names}")
    if count <= 256:
        height, width = labels.shape
        image = Image.frombytes("P", (width, height), np.ascontiguousarray(labels, dtype=np.uint8).tobytes())
        image.putpalette(png_palette(named_colours(seg.class_names)))
    else:
        image = Image.fromarray(labels.astype(np.uint16))
    return atomic_write(path, lambda handle: image.save(handle, format="PNG"), sync_directory=sync_directory)


def read_labels_png(path: str | os.PathLike) -> np.ndarray:
    """The class ids stored by `write_labels_png` (palette indices, not colours)."""
    with Image.open(path) as image:
        return np.asarray(image).astype(np.int64)


# --- overlay ------------------------------------------------------------------------------------------


def render_overlay(
    seg: Segmentation,
    image: Image.Image,
    *,
    alpha: float = DEFAULT_OVERLAY_ALPHA,
    counts: Mapping[str, int] | None = None,
) -> Image.Image:
    """The photo with each non-background class blended in its colour, and a legend strip below.

    The legend lists every class (background included, uncoloured) with its colour and pixel share, so
    a class asked for but not found reads "0.0%" instead of silently missing. `counts` are the image's
    `pixel_counts` when the caller has them already (they are then not counted again).
    """
    if image.size != (seg.size[1], seg.size[0]):
        raise ValueError(
            f"image is {image.size[0]}x{image.size[1]} but labels are {seg.size[1]}x{seg.size[0]}"
        )
    labels = np.asarray(seg.labels)
    photo = image.convert("RGB")
    colours = np.array(named_colours(seg.class_names), dtype=np.uint8)
    painted = Image.fromarray(colours[labels])
    # Only the background class stays untinted: with --no-background, id 0 is a class like the others.
    tinted = np.array([0 if is_background(name) else 255 for name in seg.class_names], dtype=np.uint8)
    foreground = Image.fromarray(tinted[labels])
    # PIL's blend and composite run in C: several times faster than float numpy on a 1080p photo.
    body = Image.composite(Image.blend(photo, painted, alpha), photo, foreground)
    legend = _render_legend(seg, width=body.width, counts=counts)
    canvas = Image.new("RGB", (body.width, body.height + legend.height), (255, 255, 255))
    canvas.paste(body, (0, 0))
    canvas.paste(legend, (0, body.height))
    return canvas


def _render_legend(seg: Segmentation, *, width: int, counts: Mapping[str, int] | None = None) -> Image.Image:
    """Entries "[swatch] name  12.3%" laid out left to right, wrapping to new rows as the width allows."""
    font_size = max(11, min(28, width // 45))
    # A font that has every name's characters; where none has one, its code point is drawn (legend_font).
    font, shown = legend_texts(seg.class_names, font_size)
    pad = max(4, font_size // 2)
    swatch = font_size
    if counts is None:
        fractions = seg.fractions()
    else:
        total = max(int(seg.labels.size), 1)
        fractions = {name: float(counts[name]) / total for name in seg.class_names}
    entries = [
        (colour, f"{label}  {100.0 * fractions[name]:.1f}%")
        for colour, name, label in zip(named_colours(seg.class_names), seg.class_names, shown, strict=True)
    ]
    scratch = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    line_height = max(swatch, _text_height(scratch, font)) + pad
    placements: list[tuple[int, int, tuple[int, int, int], str]] = []
    x, y = pad, pad
    for colour, text in entries:
        entry_width = swatch + pad // 2 + int(math.ceil(scratch.textlength(text, font=font))) + 2 * pad
        if x > pad and x + entry_width > width:
            x, y = pad, y + line_height
        placements.append((x, y, colour, text))
        x += entry_width
    legend = Image.new("RGB", (width, y + line_height + pad // 2), (255, 255, 255))
    draw = ImageDraw.Draw(legend)
    for left, top, colour, text in placements:
        draw.rectangle((left, top, left + swatch, top + swatch), fill=colour, outline=(80, 80, 80))
        draw.text((left + swatch + pad // 2, top), text, fill=(0, 0, 0), font=font)
    return legend


def _text_height(draw: ImageDraw.ImageDraw, font: ImageFont.ImageFont | ImageFont.FreeTypeFont) -> int:
    left, top, right, bottom = draw.textbbox((0, 0), "Hg%", font=font)
    return int(bottom - min(top, 0))


def write_overlay_png(
    path: str | os.PathLike,
    seg: Segmentation,
    image: Image.Image,
    *,
    alpha: float = DEFAULT_OVERLAY_ALPHA,
    sync_directory: bool = True,
    counts: Mapping[str, int] | None = None,
) -> Path:
    """`render_overlay` saved as an RGB PNG."""
    overlay = render_overlay(seg, image, alpha=alpha, counts=counts)
    return atomic_write(
        # Level 3: about 40% faster than PIL's default 6 on photos, for about 10% larger files.
        path,
        lambda handle: overlay.save(handle, format="PNG", compress_level=3),
        sync_directory=sync_directory,
    )


# --- summary ------------------------------------------------------------------------------------------


def jsonable(value: object) -> object:
    """`value` with numpy scalars/arrays, paths and other objects turned into plain JSON values.

    Non-finite floats become None (JSON has no NaN); unknown objects become their `str`.
    """
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
        return [jsonable(item) for item in items]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return str(value)


def class_table(class_names: Sequence[str]) -> list[dict[str, object]]:
    """[{id, name, colour "#rrggbb", rgb [r, g, b]}] in id order: the legend of every file of a run."""
    return [
        {"id": i, "name": name, "colour": hex_colour(colour), "rgb": list(colour)}
        for i, (name, colour) in enumerate(zip(class_names, named_colours(class_names), strict=True))
    ]


def pixel_counts(seg: Segmentation) -> dict[str, int]:
    """Pixels given to each class (all classes, zeros included)."""
    counts = np.bincount(np.asarray(seg.labels).ravel(), minlength=len(seg.class_names))
    return {name: int(counts[i]) for i, name in enumerate(seg.class_names)}


def image_summary(
    seg: Segmentation,
    *,
    source: str | os.PathLike | None = None,
    outputs: Mapping[str, Path] | None = None,
    counts: Mapping[str, int] | None = None,
) -> dict[str, object]:
    """The per-image summary as a JSON-able dict (what `write_summary_json` writes).

    `counts`: the image's `pixel_counts`, when the caller has them already.
    """
    height, width = seg.size
    counts = pixel_counts(seg) if counts is None else counts
    total = max(height * width, 1)
    classes = [
        {**entry, "pixels": counts[str(entry["name"])], "fraction": counts[str(entry["name"])] / total}
        for entry in class_table(seg.class_names)
    ]
    return {
        "format": IMAGE_SUMMARY_FORMAT,
        "source": os.fspath(source) if source is not None else None,
        "size": {"height": height, "width": width},
        "classes": classes,
        "timings": jsonable(seg.timings),
        "info": jsonable(seg.info),
        "outputs": {kind: path.name for kind, path in (outputs or {}).items()},
    }


def write_summary_json(
    path: str | os.PathLike,
    seg: Segmentation,
    *,
    source: str | os.PathLike | None = None,
    outputs: Mapping[str, Path] | None = None,
    sync_directory: bool = True,
    counts: Mapping[str, int] | None = None,
) -> Path:
    """Write `image_summary(...)` as JSON."""
    summary = image_summary(seg, source=source, outputs=outputs, counts=counts)
    return atomic_write_json(path, summary, sync_directory=sync_directory)


# --- probabilities ------------------------------------------------------------------------------------


def write_probs_npz(path: str | os.PathLike, seg: Segmentation, *, sync_directory: bool = True) -> Path:
    """Compressed npz: `probs` uint8 [C, H, W] = round(p * 255), `class_names`, `scale` = 1/255.

    Quantising to 8 bits bounds the error by 0.5/255 (about 0.002) and, with zip compression, makes the
    file a fraction of the float16 array's size.
    """
    if seg.probabilities is None:
        raise ValueError(
            "the 'probs' output needs probabilities, but this segmentation has none: "
            "ask the segmenter to keep them (see outputs.needs_probabilities)"
        )
    probabilities = np.asarray(seg.probabilities, dtype=np.float32)
    expected = (len(seg.class_names), *seg.size)
    if probabilities.shape != expected:
        raise ValueError(f"probabilities have shape {probabilities.shape}, expected {expected}")
    quantised = np.clip(np.rint(probabilities * PROBS_SCALE), 0, PROBS_SCALE).astype(np.uint8)

    def write(handle: IO[bytes]) -> None:
        np.savez_compressed(
            handle,
            probs=quantised,
            class_names=np.array(seg.class_names, dtype=str),
            scale=np.float32(1.0 / PROBS_SCALE),
        )

    return atomic_write(path, write, sync_directory=sync_directory)


def read_probs_npz(path: str | os.PathLike) -> tuple[np.ndarray, list[str]]:
    """(probabilities float32 [C, H, W], class names) from `write_probs_npz`'s file."""
    with np.load(path, allow_pickle=False) as data:
        probabilities = data["probs"].astype(np.float32) * float(data["scale"])
        names = [str(name) for name in data["class_names"]]
    return probabilities, names


# --- RLE ----------------------------------------------------------------------------------------------


def rle_document(seg: Segmentation) -> dict[str, object]:
    """COCO RLE of each class present (background included): JSON-able dict."""
    height, width = seg.size
    labels = np.asarray(seg.labels)
    present = np.flatnonzero(np.bincount(labels.ravel(), minlength=len(seg.class_names)))
    annotations = []
    for class_id in present.tolist():
        mask = labels == class_id
        annotations.append(
            {
                "id": class_id,
                "name": seg.class_names[class_id],
                "area": int(mask.sum()),
                "segmentation": encode_rle(mask),
            }
        )
    return {"size": [height, width], "classes": annotations}


def write_rle_json(path: str | os.PathLike, seg: Segmentation, *, sync_directory: bool = True) -> Path:
    """Write `rle_document(seg)` as JSON."""
    return atomic_write_json(path, rle_document(seg), sync_directory=sync_directory)


# --- run-level and all-in-one -------------------------------------------------------------------------


def write_classes_json(path: str | os.PathLike, class_names: Sequence[str]) -> Path:
    """`classes.json`: id, name and colour of every class, for whoever reads the label PNGs."""
    return atomic_write_json(path, {"format": CLASSES_FORMAT, "classes": class_table(class_names)})


def save_segmentation(
    seg: Segmentation,
    image: Image.Image | None,
    out_dir: str | os.PathLike,
    stem: str,
    save: str | Iterable[str] = DEFAULT_SAVE,
    *,
    source: str | os.PathLike | None = None,
    overlay_alpha: float = DEFAULT_OVERLAY_ALPHA,
    counts: Mapping[str, int] | None = None,
) -> dict[str, Path]:
    """Write the requested outputs of one image under `out_dir`; returns {kind: path}.

    `image` is the photo that was segmented (only the overlay needs it). `stem` names the files and may
    include subfolders. The summary is written last and lists the other files. The per-class pixel
    counts (legend, summary) are computed once here, or taken from `counts` when the caller has them.

        seg = segmenter.segment(img)
        save_segmentation(seg, img, "out", "photo", save="labels,overlay")
    """
    kinds = parse_save(save)
    paths = output_paths(out_dir, stem, kinds)
    if "overlay" in kinds and image is None:
        raise ValueError("the 'overlay' output needs the photo: pass the image that was segmented")
    # Each file is fsynced before its rename; the folder is fsynced once, after the last rename.
    if counts is None and ("overlay" in paths or "summary" in paths):
        counts = pixel_counts(seg)
    if "labels" in paths:
        write_labels_png(paths["labels"], seg, sync_directory=False)
    if "overlay" in paths:
        assert image is not None
        write_overlay_png(paths["overlay"], seg, image, alpha=overlay_alpha, sync_directory=False,
                          counts=counts)
    if "probs" in paths:
        write_probs_npz(paths["probs"], seg, sync_directory=False)
    if "rle" in paths:
        write_rle_json(paths["rle"], seg, sync_directory=False)
    if "summary" in paths:
        others = {kind: path for kind, path in paths.items() if kind != "summary"}
        write_summary_json(paths["summary"], seg, source=source, outputs=others, sync_directory=False,
                           counts=counts)
    for folder in {path.parent for path in paths.values()}:
        fsync_directory(folder)
    return paths


def read_json(path: str | os.PathLike) -> object:
    """Parse a JSON file written by these writers."""
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)
