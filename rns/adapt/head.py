"""Step 6, the problem: a linear head `W x + b` and the weighted objective it is fitted to.

The three loss terms of the method (cross-entropy on retrieved supports, cross-entropy on fused anchors,
KL to soft targets on pseudo anchors) are all "cross-entropy to a target distribution": a hard label is a
one-hot target, and KL(q || p) differs from the cross-entropy -sum q log p only by the constant entropy
of q. So the head sees one problem: features, target distributions and per-sample weights. That keeps
each solver to a dozen lines and makes the objective convex in (W, b), which the fast solver exploits.

Weights: a sample of class c weighs w_c (the class relevance; times its share, for anchors of classes with
several words), L1-normalised within its term, then multiplied by the term's weight (1.0 supports,
1.5 anchors, 0.2 pseudo). Normalising per term keeps the term weights meaningful whatever the number of
retrieved rows: otherwise a few hundred support rows would drown the handful of anchors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from rns.adapt.anchors import AnchorSet
from rns.adapt.types import AdaptConfig


@dataclass(frozen=True)
class HeadProblem:
    """Training samples `features [N, d]`, targets `[N, C]` (rows sum to 1), weights `[N]`."""

    features: torch.Tensor
    targets: torch.Tensor
    weights: torch.Tensor

    @property
    def num_classes(self) -> int:
        return int(self.targets.shape[1])

    @property
    def dim(self) -> int:
        return int(self.features.shape[1])

    def __len__(self) -> int:
        return int(self.features.shape[0])


@dataclass(frozen=True)
class LinearHead:
    """`logits = x @ weight.T + bias`, weight `[C, d]`, bias `[C]`."""

    weight: torch.Tensor
    bias: torch.Tensor

    def __call__(self, features: torch.Tensor) -> torch.Tensor:
        return features.to(self.weight.dtype) @ self.weight.T + self.bias


def _term_weights(labels: torch.Tensor, relevance: torch.Tensor, share: torch.Tensor | None,
                  term_weight: float) -> torch.Tensor:
    raw = relevance[labels] if share is None else relevance[labels] * share
    return term_weight * raw / raw.sum().clamp_min(1e-12)


def build_problem(support_vectors: torch.Tensor, support_labels: torch.Tensor, anchors: AnchorSet,
                  pseudo: AnchorSet, pseudo_targets: torch.Tensor, relevance: torch.Tensor,
                  config: AdaptConfig) -> HeadProblem:
    """Stack the three terms into one weighted problem (see the module docstring)."""
    num_classes = relevance.shape[0]
    parts: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    if support_vectors.shape[0]:
        parts.append((support_vectors, F.one_hot(support_labels, num_classes).float(),
                      _term_weights(support_labels, relevance, None, config.support_weight)))
    if len(anchors):
        parts.append((anchors.features, F.one_hot(anchors.labels, num_classes).float(),
                      _term_weights(anchors.labels, relevance, anchors.share, config.anchor_weight)))
    if len(pseudo):
        parts.append((pseudo.features, pseudo_targets.float(),
                      _term_weights(pseudo.labels, relevance, pseudo.share, config.pseudo_weight)))
    if not parts:
        raise ValueError("the head has no training samples")
    return HeadProblem(torch.cat([p[0] for p in parts]).float(), torch.cat([p[1] for p in parts]),
                       torch.cat([p[2] for p in parts]))


def objective(head: LinearHead, problem: HeadProblem) -> torch.Tensor:
    """The weighted cross-entropy of the head on the problem (a 0-dim tensor, differentiable)."""
    log_probs = torch.log_softmax(head(problem.features), dim=1)
    return -(problem.weights * (problem.targets * log_probs).sum(dim=1)).sum()


def initial_head(num_classes: int, dim: int, seed: int, device: torch.device | str) -> LinearHead:
    """Kaiming-uniform weight as `torch.nn.Linear` initialises it (bound 1/sqrt(d)), zero bias.

    Drawn on the CPU from a seeded generator, then moved, so that a seed gives the same start on any device.
    """
    generator = torch.Generator().manual_seed(seed)
    bound = 1.0 / math.sqrt(dim)
    weight = (torch.rand(num_classes, dim, generator=generator) * 2.0 - 1.0) * bound
    return LinearHead(weight.to(device), torch.zeros(num_classes, device=device))
