"""Step 6, the problem: a linear head `W x + b` and the weighted objective it is fitted to.

The three loss terms of the method (cross-entropy on retrieved supports, cross-entropy on fused anchors,
KL to soft targets on pseudo anchors) are all "cross-entropy to a target distribution": a hard label is a
one-hot target, and KL(q || p) differs from the cross-entropy -sum q log p only by the constant entropy
of q. So the head sees one problem: features, target distributions and per-sample weights. That keeps
each solver to a dozen lines and makes the objective convex in (W, b), which the fast solver exploits.

Weights (the reference's rule, `weighting="global"`): a sample of class c weighs w_c (the class relevance;
times its share, for anchors of classes with several words; for a pseudo anchor, c is the argmax of its
soft target), L1-normalised over ALL samples together, times its term's multiplier (1.0 supports, 1.5
anchors, 0.2 pseudo); the objective is the MEAN over samples of weight x cross-entropy. With
`weighting="per_term"` (an rns option) the weights are L1-normalised within each term instead, so the
term multipliers keep their meaning whatever the number of retrieved rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from rns.adapt.anchors import AnchorSet
from rns.adapt.row_factors import RowFactors, factors_pay_off, stack_factors
from rns.adapt.types import AdaptConfig

SAMPLE_KINDS = ("retrieved", "anchor", "pseudo")


@dataclass(frozen=True)
class HeadProblem:
    """Training samples `features [N, d]`, targets `[N, C]` (rows sum to 1), weights `[N]`, kinds `[N]`.

    `kinds` index `SAMPLE_KINDS`; samples come in that order. The objective is `sum(weights * CE)`: the
    weights already include the reference's 1/N of its mean. `factors`, when given, describe the same
    features as combinations of fewer vectors (`rns.adapt.row_factors`), and the fit multiplies by them.
    """

    features: torch.Tensor
    targets: torch.Tensor
    weights: torch.Tensor
    kinds: torch.Tensor
    factors: RowFactors | None = None

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


def build_problem(support_vectors: torch.Tensor, support_labels: torch.Tensor, anchors: AnchorSet,
                  pseudo: AnchorSet, pseudo_targets: torch.Tensor, relevance: torch.Tensor,
                  config: AdaptConfig) -> HeadProblem:
    """Stack the three terms into one weighted problem (see the module docstring)."""
    num_classes = relevance.shape[0]
    device = relevance.device
    pseudo_classes = pseudo_targets.argmax(dim=1) if len(pseudo) else pseudo.labels
    terms = [
        (support_vectors, F.one_hot(support_labels, num_classes).float(), support_labels,
         torch.ones(support_labels.shape[0], device=device), config.support_weight),
        (anchors.features, F.one_hot(anchors.labels, num_classes).float(), anchors.labels, anchors.share,
         config.anchor_weight),
        (pseudo.features, pseudo_targets.float(), pseudo_classes, pseudo.share, config.pseudo_weight),
    ]
    features, targets, raw, multipliers, kinds = [], [], [], [], []
    for kind, (vectors, target, weight_class, share, multiplier) in enumerate(terms):
        if vectors.shape[0] == 0:
            continue
        features.append(vectors.float())
        targets.append(target)
        term_raw = relevance[weight_class] * share
        if config.weighting == "per_term":
            term_raw = term_raw / term_raw.sum().clamp_min(1e-12)
        raw.append(term_raw)
        multipliers.append(torch.full_like(term_raw, multiplier))
        kinds.append(torch.full((vectors.shape[0],), kind, dtype=torch.long, device=device))
    if not features:
        raise ValueError("the head has no training samples")
    raw_all = torch.cat(raw)
    if config.weighting == "global":
        raw_all = raw_all / raw_all.sum().clamp_min(1e-12)
    weights = raw_all * torch.cat(multipliers) / raw_all.shape[0]
    stacked = torch.cat(features)
    return HeadProblem(stacked, torch.cat(targets), weights, torch.cat(kinds),
                       _factors(support_vectors, anchors, pseudo, stacked.shape))


def _factors(support_vectors: torch.Tensor, anchors: AnchorSet, pseudo: AnchorSet,
             shape: torch.Size) -> RowFactors | None:
    """The problem's rows as combinations (retrieved rows as their own basis), where that pays off."""
    rank = support_vectors.shape[0] + anchors.factors.rank + pseudo.factors.rank + 1  # + 1: the bias
    if not factors_pay_off(rank, shape[0], shape[1] + 1):
        return None  # e.g. thousands of retrieved rows: not even the identity block is built
    parts = [RowFactors.identity(support_vectors.float()), anchors.factors, pseudo.factors]
    return stack_factors([RowFactors(part.coefficients.float(), part.basis.float())
                          for part in parts if len(part)])


def objective(head: LinearHead, problem: HeadProblem) -> torch.Tensor:
    """The weighted cross-entropy of the head on the problem (a 0-dim tensor, differentiable)."""
    log_probs = torch.log_softmax(head(problem.features), dim=1)
    return -(problem.weights * (problem.targets * log_probs).sum(dim=1)).sum()


def initial_head(num_classes: int, dim: int, seed: int, device: torch.device | str) -> LinearHead:
    """The reference's start: Kaiming-uniform weight (fan_in, ReLU gain: bound sqrt(6 / d)), zero bias.

    Drawn on the CPU from a generator seeded with `seed`, then moved, so that a seed gives the same start
    on any device; the draw is `torch.nn.init.kaiming_uniform_`'s, so `seed` reproduces the reference's
    head when it runs after `torch.manual_seed(seed)`.
    """
    generator = torch.Generator().manual_seed(seed)
    bound = math.sqrt(3.0) * (math.sqrt(2.0) / math.sqrt(dim))
    weight = torch.empty(num_classes, dim).uniform_(-bound, bound, generator=generator)
    return LinearHead(weight.to(device), torch.zeros(num_classes, device=device))
