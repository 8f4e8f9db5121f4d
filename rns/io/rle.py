"""COCO run-length encoding of binary masks, readable by pycocotools without conversion.

COCO stores a mask as run lengths over its pixels in column-major (Fortran) order, starting with a run of
zeros (possibly empty), with `size = [height, width]`. The compact form used in COCO result files
encodes those counts as a string: each count (from the fourth on, as the difference to the count two
places back) is written as 5-bit groups, least significant first, with 0x20 marking "more groups follow"
and 0x10 in the last group carrying the sign, each group offset by 48 into printable ASCII.
`encode_rle` writes that string form (what `pycocotools.mask.decode` takes as is); `decode_rle` reads
it back, and also accepts the uncompressed list form.
"""

from __future__ import annotations

import numpy as np


def mask_to_counts(mask: np.ndarray) -> list[int]:
    """Column-major run lengths of a 2-D boolean mask, the first run counting zeros."""
    flat = np.asarray(mask, dtype=bool).ravel(order="F")
    if flat.size == 0:
        return []
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    runs = np.diff(np.concatenate(([0], changes, [flat.size]))).tolist()
    return [0, *runs] if flat[0] else runs


def counts_to_string(counts: list[int]) -> str:
    """COCO's compact string form of run lengths."""
    out: list[str] = []
    for index, count in enumerate(counts):
        value = int(count) - (int(counts[index - 2]) if index > 2 else 0)
        more = True
        while more:
            group = value & 0x1F
            value >>= 5  # arithmetic shift: negative values stay negative
            more = value != -1 if group & 0x10 else value != 0
            if more:
                group |= 0x20
            out.append(chr(group + 48))
    return "".join(out)


def string_to_counts(text: str) -> list[int]:
    """Inverse of `counts_to_string`."""
    counts: list[int] = []
    position = 0
    while position < len(text):
        value = 0
        shift = 0
        more = True
        while more:
            if position >= len(text):
                raise ValueError("truncated COCO RLE string")
            group = ord(text[position]) - 48
            value |= (group & 0x1F) << shift
            more = bool(group & 0x20)
            position += 1
            shift += 5
            if not more and group & 0x10:
                value |= -1 << shift  # sign-extend
        if len(counts) > 2:
            value += counts[-2]
        counts.append(value)
    return counts


def encode_rle(mask: np.ndarray) -> dict[str, object]:
    """`{"size": [h, w], "counts": str}` for a 2-D boolean mask, as in COCO result files."""
    if mask.ndim != 2:
        raise ValueError(f"RLE encodes 2-D masks, got shape {mask.shape}")
    height, width = mask.shape
    return {"size": [int(height), int(width)], "counts": counts_to_string(mask_to_counts(mask))}


def decode_rle(rle: dict[str, object]) -> np.ndarray:
    """The boolean `[h, w]` mask of a COCO RLE (string or list counts)."""
    height, width = (int(v) for v in rle["size"])  # type: ignore[union-attr]
    raw = rle["counts"]
    counts = string_to_counts(raw) if isinstance(raw, str) else [int(c) for c in raw]  # type: ignore[union-attr]
    if sum(counts) != height * width:
        raise ValueError(
            f"RLE counts cover {sum(counts)} pixels, size {height}x{width} needs {height * width}"
        )
    values = np.zeros(len(counts), dtype=bool)
    values[1::2] = True
    flat = np.repeat(values, counts)
    return flat.reshape((width, height)).T.copy()
