"""How many images one backbone call should take: `--batch-size auto`.

Batching images only pays where one image leaves the hardware idle. A CPU is kept busy by one image's crops
(its matrix products already use every core), so there the answer is 1. A GPU runs the two 448 x 448 crops
of a 480 x 360 photo far below its capacity, so there the answer is as many images as fit comfortably in
the free memory, up to `MAX_AUTO_IMAGES` (beyond it a forward is already large enough to fill the GPU,
and a bigger group only delays the first outputs and holds more decoded photos in memory).

The memory of one image is estimated, not measured: the activations of one crop inside one transformer
block (input, layer norm, q/k/v, attention scores and their softmax, the MLP's hidden layer and its
activation), times the most crops of one image in one forward (`WindowConfig.batch_size`), times a
safety factor, against half of the free memory. Blocks run one after another under inference mode, so
one block's activations bound the peak; the factor covers the allocator's slack and what the estimate
leaves out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from rns.backbone.dense import DenseFeatureExtractor

MAX_AUTO_IMAGES = 16
SAFETY_FACTOR = 2.0
FREE_SHARE = 0.5  # of the free GPU memory; the rest stays for the head fit, upsampling and other processes


def crop_activation_bytes(visual: torch.nn.Module, grid: int) -> int:
    """Estimated peak bytes of one `grid x grid`-patch crop inside one transformer block."""
    block = visual.transformer.resblocks[0]
    width = int(visual.transformer.width)
    heads = int(block.attn.num_heads)
    fc = getattr(getattr(block, "mlp", None), "c_fc", None)
    hidden = int(fc.out_features) if fc is not None else 4 * width
    tokens = grid * grid + 1
    elements = tokens * (6 * width + 2 * hidden) + 2 * heads * tokens * tokens
    return int(elements * visual.conv1.weight.element_size())


def images_per_forward(dense: DenseFeatureExtractor, free_bytes: int) -> int:
    """Images whose crops fit together in `free_bytes` by the estimate above, from 1 to `MAX_AUTO_IMAGES`."""
    grid = dense.window.crop // dense.patch
    per_image = crop_activation_bytes(dense.visual, grid) * dense.window.batch_size * SAFETY_FACTOR
    return max(1, min(MAX_AUTO_IMAGES, int(free_bytes * FREE_SHARE // per_image)))


def auto_images_per_forward(dense: DenseFeatureExtractor) -> int:
    """1 on a CPU (or any non-CUDA device); on CUDA, chosen from the memory free on the model's GPU now."""
    device = dense.device
    if device.type != "cuda":
        return 1
    free, _ = torch.cuda.mem_get_info(device)
    cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)  # reusable by torch
    return images_per_forward(dense, int(free + cached))


__all__ = ["MAX_AUTO_IMAGES", "auto_images_per_forward", "crop_activation_bytes", "images_per_forward"]
