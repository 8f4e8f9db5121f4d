"""Step 1: the zero-shot pass, `z_j = softmax(T * x_j . t_c)`.

It is both the whole answer when there are no examples (`rns segment --zero-shot`) and, inside the
adaptation, the source of pseudo labels for classes that have no visual support.
"""

from __future__ import annotations

import torch

from rns.adapt.types import ClassText


def text_similarity(features: torch.Tensor, text: ClassText) -> torch.Tensor:
    """`[n, C]` cosine similarity of each feature to each class: the best match over the class's vectors.

    Classes without text get -inf, so that a softmax gives them exactly zero probability.
    """
    n, num_classes = features.shape[0], text.num_classes
    sims = torch.full((n, num_classes), float("-inf"), device=features.device, dtype=features.dtype)
    if text.dim is None:
        return sims
    vectors, owners = text.stacked(features.device)
    per_vector = features @ vectors.to(features.dtype).T
    return sims.scatter_reduce(1, owners.expand(n, -1), per_vector, reduce="amax", include_self=True)


def zero_shot_logits(features: torch.Tensor, text: ClassText, temperature: float = 100.0) -> torch.Tensor:
    """`[n, C]` zero-shot logits `temperature * x . t` (-inf for classes without text)."""
    return temperature * text_similarity(features, text)
