"""A contact sheet of the entries that hurt most: each photo with the entry's mask tinted, and its score.

For people who would rather look than read: a swapped class or a shifted mask shows at a glance.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from rns.audit.report import EntryScore
from rns.errors import InputError
from rns.io.atomic import atomic_write_bytes
from rns.io.imageio import load_image, load_mask
from rns.io.legend_font import legend_texts
from rns.teach.mask_conventions import LabelMapping

TILE_WIDTH = 320
CAPTION_HEIGHT = 40
COLUMNS = 4
TINT = np.array([255, 40, 40], dtype=np.float32)


def _mapping(entry_meta_labels: str | None, class_name: str) -> LabelMapping:
    if entry_meta_labels:
        return LabelMapping.from_meta(entry_meta_labels)
    return LabelMapping.single_class(class_name)


def _tile(entry: EntryScore, labels_meta: str | None) -> Image.Image | None:
    """The photo with the entry's class pixels tinted, scaled to the tile width; None if unreadable."""
    try:
        photo = load_image(entry.image)
        mapping = _mapping(labels_meta, entry.class_name)
        labels = mapping.label_map(load_mask(entry.mask), entry.mask)
    except (InputError, OSError, ValueError, KeyError):
        return None
    names = [n.casefold() for n in mapping.class_names]
    if entry.class_name.casefold() not in names or labels.shape != (photo.height, photo.width):
        return None
    selected = labels == names.index(entry.class_name.casefold())
    pixels = np.asarray(photo, dtype=np.float32).copy()
    pixels[selected] = 0.45 * pixels[selected] + 0.55 * TINT
    image = Image.fromarray(pixels.astype(np.uint8))
    height = max(1, round(image.height * TILE_WIDTH / image.width))
    return image.resize((TILE_WIDTH, height), Image.BILINEAR)


def write_sheet(path: str | os.PathLike, entries: list[EntryScore], labels_meta: dict[str, str | None],
                *, limit: int = 12) -> int:
    """Write the sheet of up to `limit` entries (worst first) as a PNG; returns how many tiles it holds.

    `labels_meta` gives each entry's recorded mask convention (by source id). Entries whose files are
    gone are left out; with none left, nothing is written and an `InputError` says so.
    """
    tiles: list[tuple[Image.Image, list[str]]] = []
    for entry in entries[:limit]:
        tile = _tile(entry, labels_meta.get(entry.source_id))
        if tile is None:
            continue
        score = entry.score or 0.0
        tiles.append((tile, [f"{entry.class_name} from {Path(entry.image).name}",
                             f"{score:+.1f} IoU points on {entry.retrieved_by} photos"]))  # fmt: skip
    if not tiles:
        raise InputError(f"no contact sheet written to {path}: no flagged entry's photo and mask could be "
                         "read (run the audit where the support photos are, or lower --threshold)")
    columns = min(COLUMNS, len(tiles))
    rows = -(-len(tiles) // columns)
    cell_height = max(tile.height for tile, _ in tiles) + CAPTION_HEIGHT
    sheet = Image.new("RGB", (columns * TILE_WIDTH, rows * cell_height), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    font, _ = legend_texts([line for _, lines in tiles for line in lines], 14)
    for index, (tile, lines) in enumerate(tiles):
        x, y = (index % columns) * TILE_WIDTH, (index // columns) * cell_height
        sheet.paste(tile, (x, y))
        _, drawn = legend_texts(lines, 14)
        for number, line in enumerate(drawn):
            draw.text((x + 4, y + tile.height + 2 + 18 * number), line, fill=(0, 0, 0), font=font)
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())
    return len(tiles)
