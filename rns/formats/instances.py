"""Splitting a label map into instances, and an instance into the polygon YOLO wants.

An *instance* is one 8-connected component of one class value: a label map says which pixels are which
class, not which object they belong to, so touching cars become one instance. 8-connectivity is what
OpenCV's contour tracer follows, so each instance has exactly one outer contour.

Polygons come from OpenCV's `findContours` rather than scikit-image's `find_contours`, for three reasons:
it reports which contours are holes of which outline (`RETR_CCOMP`), which a hole-less format like YOLO's
needs to keep holes open; its vertices lie on the centres of the instance's boundary pixels, so filling
the polygon the way YOLO trainers do (OpenCV's `fillPoly`, boundary included) gives the instance's pixels
back; and `CHAIN_APPROX_SIMPLE` drops only collinear vertices, so nothing is lost. (scikit-image traces
sub-pixel iso-lines with no outer/hole distinction, and is not otherwise needed.)

A polygon cannot have holes, so each hole is joined to the outline by a zero-width cut: the polygon runs
from the outline's vertex nearest to the hole, round the hole, and back. The hole (traversed the other way
round) stays empty. Between the nearest vertices the cut normally crosses only the instance's own pixels,
so filling it adds nothing; where it clips something else, it adds a one-pixel line. (On CamVid the
worst instance of 100 pixels or more comes back with IoU 0.993; see tests/test_formats_camvid.py.)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from rns.formats import _deps


@dataclass(frozen=True)
class Instance:
    """One connected component of one class value; `mask` is full-size boolean."""

    value: int
    mask: np.ndarray
    bbox: tuple[int, int, int, int]  # x, y, width, height in pixels
    area: int


def connected_instances(labels: np.ndarray, values: Iterable[int]) -> Iterator[Instance]:
    """Every 8-connected component of each of `values` in `labels`, by value then in scan order."""
    cv2 = _deps.cv2()
    labels = np.asarray(labels)
    for value in values:
        binary = (labels == value).astype(np.uint8)
        if not binary.any():
            continue
        count, components, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
        for index in range(1, count):
            x, y, width, height, area = (int(v) for v in stats[index])
            mask = np.zeros(labels.shape, dtype=bool)
            mask[y:y + height, x:x + width] = components[y:y + height, x:x + width] == index
            yield Instance(value=int(value), mask=mask, bbox=(x, y, width, height), area=area)


def instance_polygon(instance: Instance) -> np.ndarray:
    """One polygon `[N, 2]` (x, y at pixel centres, i.e. +0.5) whose filling is the instance's pixels.

    Holes are joined to the outline by zero-width cuts (see the module docstring). A polygon of fewer than
    three vertices (a one- or two-pixel instance) is padded by repeating its last vertex, since polygon
    readers expect at least three.
    """
    cv2 = _deps.cv2()
    x, y, width, height = instance.bbox
    crop = np.ascontiguousarray(instance.mask[y:y + height, x:x + width], dtype=np.uint8)
    # One pixel of padding so that contours along the crop's border are traced like any other.
    padded = np.pad(crop, 1)
    contours, hierarchy = cv2.findContours(padded, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    links = hierarchy[0]
    outers = [i for i in range(len(contours)) if links[i][3] == -1]
    # One 8-connected component has one outline; keep the largest should the tracer ever disagree.
    outer = max(outers, key=lambda i: len(contours[i]))
    outline = contours[outer][:, 0, :].astype(np.float64)
    holes = [contours[i][:, 0, :].astype(np.float64) for i in range(len(contours)) if links[i][3] == outer]
    polygon = _join_holes(outline, holes)
    polygon += np.array([x - 1 + 0.5, y - 1 + 0.5])  # undo the padding and crop; pixel centres
    while len(polygon) < 3:
        polygon = np.vstack([polygon, polygon[-1:]])
    return polygon


def _join_holes(outline: np.ndarray, holes: list[np.ndarray]) -> np.ndarray:
    """The outline with each hole spliced in at the outline vertex nearest to it."""
    inserts: dict[int, list[np.ndarray]] = {}
    for hole in holes:
        distances = ((outline[:, None, :] - hole[None, :, :]) ** 2).sum(axis=-1)
        at_outline, at_hole = np.unravel_index(int(distances.argmin()), distances.shape)
        ring = np.vstack([np.roll(hole, -int(at_hole), axis=0), hole[at_hole:at_hole + 1]])
        inserts.setdefault(int(at_outline), []).append(ring)
    if not inserts:
        return outline.copy()
    pieces: list[np.ndarray] = []
    for index, vertex in enumerate(outline):
        pieces.append(vertex[None])
        for ring in inserts.get(index, []):
            pieces.append(ring)
            pieces.append(vertex[None])  # back along the cut
    return np.vstack(pieces)


def fill_polygon(polygon: np.ndarray, height: int, width: int) -> np.ndarray:
    """Boolean `[height, width]` mask of a polygon in pixel coordinates, filled as YOLO trainers fill it.

    Coordinates are truncated to whole pixels and the polygon filled with its boundary by OpenCV's
    `fillPoly`, which is how Ultralytics turns YOLO-seg labels into training masks.
    """
    cv2 = _deps.cv2()
    mask = np.zeros((height, width), dtype=np.uint8)
    points = np.asarray(polygon, dtype=np.float64).astype(np.int32).reshape(-1, 1, 2)
    cv2.fillPoly(mask, [points], 1)
    return mask.astype(bool)
