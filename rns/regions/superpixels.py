"""SLIC superpixels in torch: region proposals that need no weights.

SLIC (Achanta et al., 2012) is k-means over (CIELAB colour, position) in which each pixel only considers the
cluster centres seeded in its own and the 8 neighbouring grid cells, so every iteration costs 9 distance
evaluations per pixel. Distances are `|lab - lab_k|^2 + (m / S)^2 |xy - xy_k|^2` with grid step S and
compactness m: small m follows colour edges closely, large m gives regular, square-ish cells.
k-means can leave a cluster in several pieces; afterwards every 4-connected piece smaller than
`min_size_fraction` of the average superpixel is merged into the adjacent piece of most similar mean colour
(never "whichever neighbour comes first", which would smear pieces across colour edges).

Why not scikit-image: its SLIC is good, but it brings scipy, networkx, imageio and tifffile into a CLI that
needs none of them otherwise; this is ~100 lines (time per image: benchmarks/regions_speed.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from PIL import Image

from rns.regions.components import connected_components
from rns.regions.paint import compact_ids

# Bumped whenever the algorithm changes in a way that changes its output, so cached maps are recomputed.
ALGORITHM_VERSION = 1


@dataclass(frozen=True)
class SlicSettings:
    """Sized for the backbone's 448-px short side: 200 superpixels are about 5 patches of 16 px each."""

    n_segments: int = 200
    compactness: float = 10.0
    iterations: int = 10
    min_size_fraction: float = 0.25
    # Larger images are segmented on a downscaled copy (labels scaled back, nearest; edges move by a pixel
    # or two): features are computed at a 448-px short side anyway, and SLIC's time grows faster than the
    # pixel count once its arrays outgrow the CPU cache (measured: 4.3x the pixels of 480x360, ~7x the time).
    max_pixels: int = 500_000

    def __post_init__(self) -> None:
        if self.n_segments < 1 or self.iterations < 1 or self.max_pixels < 1:
            raise ValueError("n_segments, iterations and max_pixels must be positive")
        if self.compactness <= 0 or not 0 <= self.min_size_fraction < 1:
            raise ValueError("compactness must be > 0 and min_size_fraction in [0, 1)")

    def key(self) -> str:
        """A stable text form for cache keys."""
        fields = ",".join(f"{name}={value}" for name, value in sorted(asdict(self).items()))
        return f"slic-v{ALGORITHM_VERSION}:{fields}"


def rgb_to_lab(rgb: np.ndarray) -> torch.Tensor:
    """sRGB uint8 `[H, W, 3]` -> CIELAB float32 `[H, W, 3]` (D65 white), the space SLIC measures colour in."""
    srgb = torch.from_numpy(np.array(rgb, dtype=np.float32)) / 255.0
    linear = torch.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)
    to_xyz = torch.tensor(
        [[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]]
    )
    xyz = linear @ to_xyz.T / torch.tensor([0.950456, 1.0, 1.088754])
    delta = 6.0 / 29.0
    f = torch.where(xyz > delta**3, xyz.clamp_min(1e-12) ** (1.0 / 3.0), xyz / (3 * delta**2) + 4.0 / 29.0)
    lightness = 116.0 * f[..., 1] - 16.0
    a = 500.0 * (f[..., 0] - f[..., 1])
    b = 200.0 * (f[..., 1] - f[..., 2])
    return torch.stack([lightness, a, b], dim=-1)


def _kmeans(lab: torch.Tensor, settings: SlicSettings) -> torch.Tensor:
    """SLIC's local k-means; returns the cluster index of every pixel, flat `[H*W]`."""
    height, width, _ = lab.shape
    step = float(np.sqrt(height * width / settings.n_segments))
    rows_n = max(1, min(height, round(height / step)))
    cols_n = max(1, min(width, round(width / step)))

    ys = torch.arange(height, dtype=torch.float32)
    xs = torch.arange(width, dtype=torch.float32)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    points = torch.cat([lab, yy[..., None], xx[..., None]], dim=-1).reshape(-1, 5)
    scale = torch.tensor([1.0, 1.0, 1.0] + [(settings.compactness / step) ** 2] * 2)

    # Seed one centre in the middle of each grid cell; remember each pixel's own cell.
    cell_y = (torch.arange(height) * rows_n // height).repeat_interleave(width)
    cell_x = (torch.arange(width) * cols_n // width).repeat(height)
    centre_y = ((torch.arange(rows_n) + 0.5) * height / rows_n).long().clamp_max(height - 1)
    centre_x = ((torch.arange(cols_n) + 0.5) * width / cols_n).long().clamp_max(width - 1)
    centres = points.view(height, width, 5)[centre_y[:, None], centre_x[None, :]].reshape(-1, 5).clone()
    n_centres = centres.shape[0]

    candidates = []
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            ky, kx = cell_y + dy, cell_x + dx
            inside = (ky >= 0) & (ky < rows_n) & (kx >= 0) & (kx < cols_n)
            candidates.append((torch.where(inside, ky * cols_n + kx, 0), ~inside))

    assignment = torch.zeros(points.shape[0], dtype=torch.int64)
    for _ in range(settings.iterations):
        best = torch.full((points.shape[0],), float("inf"))
        for index, outside in candidates:
            # In place on one gathered [N, 5] buffer: this loop is where all of SLIC's time goes.
            difference = torch.index_select(centres, 0, index).sub_(points).square_()
            distance = torch.mv(difference, scale).masked_fill_(outside, torch.inf)
            better = distance < best
            best = torch.where(better, distance, best)
            assignment = torch.where(better, index, assignment)
        sums = torch.zeros(n_centres, 5).index_add_(0, assignment, points)
        counts = torch.bincount(assignment, minlength=n_centres).float()
        filled = counts > 0
        centres[filled] = sums[filled] / counts[filled, None]  # an emptied cluster keeps its old centre
    return assignment


def _merge_small_pieces(pieces: np.ndarray, lab: np.ndarray, min_size: float) -> np.ndarray:
    """Merge every connected piece smaller than `min_size` into its most colour-similar large neighbour.

    Repeats because a small piece whose neighbours are all small gets a large neighbour once they merge.
    """
    for _ in range(32):
        n = int(pieces.max()) + 1
        flat = pieces.ravel()
        sizes = np.bincount(flat, minlength=n)
        small = sizes < min_size
        if not small.any():
            break
        means = np.stack([np.bincount(flat, weights=lab[..., c].ravel(), minlength=n) for c in range(3)], 1)
        means /= np.maximum(sizes, 1)[:, None]
        a = np.concatenate([pieces[:, :-1].ravel(), pieces[:-1, :].ravel()])
        b = np.concatenate([pieces[:, 1:].ravel(), pieces[1:, :].ravel()])
        differ = a != b
        a, b = np.concatenate([a[differ], b[differ]]), np.concatenate([b[differ], a[differ]])
        usable = small[a] & ~small[b]
        if not usable.any():
            break
        a, b = a[usable], b[usable]
        distance = ((means[a] - means[b]) ** 2).sum(axis=1)
        order = np.lexsort((b, distance, a))  # by piece, then colour distance, ties by id: deterministic
        first = np.unique(a[order], return_index=True)[1]
        target = np.arange(n)
        target[a[order][first]] = b[order][first]
        pieces = compact_ids(target[pieces]).astype(np.int64)
    return pieces


def slic_superpixels(image: np.ndarray, settings: SlicSettings | None = None) -> np.ndarray:
    """SLIC superpixels of an RGB uint8 image `[H, W, 3]`: int32 region map `[H, W]`, ids 0..R-1, each
    region 4-connected except where a piece had no large neighbour to join."""
    settings = settings or SlicSettings()
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB image [H, W, 3], got shape {image.shape}")
    height, width = image.shape[:2]
    work = image
    if height * width > settings.max_pixels:
        factor = float(np.sqrt(settings.max_pixels / (height * width)))
        size = (max(1, round(width * factor)), max(1, round(height * factor)))
        work = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BOX))

    lab = rgb_to_lab(work)
    assignment = _kmeans(lab, settings).numpy().reshape(work.shape[:2])
    pieces, _ = connected_components(assignment)
    mean_area = work.shape[0] * work.shape[1] / settings.n_segments
    pieces = _merge_small_pieces(pieces, lab.numpy(), settings.min_size_fraction * mean_area)

    if work is not image:
        upscaled = Image.fromarray(pieces.astype(np.int32), mode="I").resize((width, height), Image.NEAREST)
        pieces = np.asarray(upscaled)
    return compact_ids(pieces)
