"""Steps 4 and 5: fused text+visual anchors, and pseudo prototypes for classes without visual support.

An anchor `f_c(l) = normalize(l * v_c + (1 - l) * t_c)` sits between what the examples of a class look
like (`v_c`) and what its name means (`t_c`). Training the head on the whole grid of l lets it find, per
image, the blend that separates the classes best, instead of fixing one hand-tuned mix.

A class with several text vectors (background: "sky", "wall", ...) gets one anchor per (l, vector) pair;
its anchors then share the class's weight (see `AnchorSet.share`) so that a class with many words is not
worth more than a class with one. Each anchor set also carries its anchors as combinations of the
prototypes and text vectors they mix (`RowFactors`), which the head fit multiplies by instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from rns.adapt.row_factors import RowFactors
from rns.adapt.types import ClassText


@dataclass(frozen=True)
class AnchorSet:
    """Anchors `[N, d]`, the class each stands for `[N]`, each one's share of its class's weight `[N]`,
    and the anchors as combinations of the vectors they mix (`factors.rows()` equals `features`)."""

    features: torch.Tensor
    labels: torch.Tensor
    share: torch.Tensor
    factors: RowFactors

    @classmethod
    def empty(cls, dim: int, device: torch.device | str) -> AnchorSet:
        return cls(torch.zeros(0, dim, device=device), torch.zeros(0, dtype=torch.long, device=device),
                   torch.zeros(0, device=device), RowFactors.empty(dim, device))

    def __len__(self) -> int:
        return int(self.features.shape[0])


def neutral_text_prior(text: ClassText, device: torch.device | str) -> torch.Tensor | None:
    """The text prior of a class with no usable name: the normalised mean of the classes' texts.

    Each class counts once (its own vectors are averaged first), so background's many words do not pull
    the prior towards background. None when no class has text.
    """
    means = [F.normalize(v.mean(dim=0), dim=-1) for v in text.vectors if v is not None]
    if not means:
        return None
    return F.normalize(torch.stack(means).mean(dim=0), dim=-1).to(device)


def fuse(visual: torch.Tensor, text_vectors: torch.Tensor | None, lambdas: tuple[float, ...]) -> torch.Tensor:
    """`[L * k, d]` anchors `normalize(l * visual + (1 - l) * t)` for every l and every text vector t.

    With no text at all the visual prototype is the only anchor.
    """
    return _fuse(visual, text_vectors, lambdas)[0]


def _fuse(visual: torch.Tensor, text_vectors: torch.Tensor | None,
          lambdas: tuple[float, ...]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`fuse`'s anchors and their factors: coefficients `[L * k, 1 + k]` over the basis `[visual; t_1..t_k]`.

    Anchor (l, j) is `(l * visual + (1 - l) * t_j) / n_lj`: coefficient `l / n_lj` on the prototype and
    `(1 - l) / n_lj` on its own text vector, where n_lj is the norm the normalisation divides by.
    """
    if text_vectors is None:
        scale = 1.0 / visual.norm().clamp_min(1e-12)
        return F.normalize(visual[None], dim=-1), scale.reshape(1, 1), visual[None]
    lam = torch.tensor(lambdas, device=visual.device, dtype=visual.dtype)[:, None, None]
    mixed = lam * visual[None, None] + (1.0 - lam) * text_vectors[None]  # [L, k, d]
    anchors = F.normalize(mixed.reshape(-1, visual.shape[-1]), dim=-1)
    count = text_vectors.shape[0]
    inverse_norms = 1.0 / mixed.norm(dim=-1).clamp_min(1e-12)  # [L, k], F.normalize's divisor
    coefficients = torch.zeros(len(lambdas), count, 1 + count, device=visual.device, dtype=visual.dtype)
    coefficients[:, :, 0] = lam[:, :, 0] * inverse_norms
    own_text = torch.arange(count, device=visual.device)
    coefficients[:, own_text, 1 + own_text] = (1.0 - lam[:, :, 0]) * inverse_norms
    return anchors, coefficients.reshape(-1, 1 + count), torch.cat([visual[None], text_vectors])


def build_anchor_set(prototypes: dict[int, torch.Tensor], text: ClassText, lambdas: tuple[float, ...],
                     prior: torch.Tensor | None, dim: int, device: torch.device | str) -> AnchorSet:
    """Fused anchors of the given classes from their prototypes (visual or pseudo).

    Ordered as the reference orders them: lambda-major, then class (ascending), then text vector. A class
    without text is fused with `prior` (the neutral text prior) instead of its own text.
    """
    per_class = []  # (class, anchors, coefficients, basis, text vectors per lambda; None: no text)
    for c, proto in sorted(prototypes.items()):
        vectors = text.vectors[c]
        tvec = vectors.to(device) if vectors is not None else (None if prior is None else prior[None])
        anchors, coefficients, basis = _fuse(proto.to(device), tvec, lambdas)  # lambda-major rows
        per_class.append((c, anchors, coefficients, basis, None if tvec is None else tvec.shape[0]))
    if not per_class:
        return AnchorSet.empty(dim, device)
    offsets = [0]
    for *_, basis, _k in per_class:
        offsets.append(offsets[-1] + basis.shape[0])
    blocks, labels, shares, coefficient_rows = [], [], [], []
    for step in range(len(lambdas)):
        for (c, anchors, coefficients, _basis, k), offset in zip(per_class, offsets, strict=False):
            if k is None and step > 0:
                continue  # the visual prototype alone is listed once, with the first lambda
            rows = slice(0, 1) if k is None else slice(step * k, (step + 1) * k)
            blocks.append(anchors[rows])
            labels.append(torch.full((blocks[-1].shape[0],), c, dtype=torch.long, device=device))
            shares.append(torch.full((blocks[-1].shape[0],), 1.0 / (k or 1), device=device))
            block = coefficients[rows]
            coefficient_rows.append(F.pad(block, (offset, offsets[-1] - offset - block.shape[1])))
    factors = RowFactors(torch.cat(coefficient_rows), torch.cat([entry[3] for entry in per_class]))
    return AnchorSet(torch.cat(blocks), torch.cat(labels), torch.cat(shares), factors)


def pseudo_prototypes(queries: torch.Tensor, zero_shot_labels: torch.Tensor, classes: list[int],
                      text: ClassText) -> dict[int, torch.Tensor]:
    """Pseudo prototype `p_c` of each class that zero-shot predicts somewhere in this image.

    `p_c` is the normalised mean of the queries zero-shot assigns to c. A class zero-shot gives no query
    gets no prototype and so no pseudo anchors: as in the reference, the image shows no sign of it.
    """
    protos: dict[int, torch.Tensor] = {}
    for c in classes:
        if text.vectors[c] is None:
            raise ValueError(f"pseudo prototypes need text; class {c} has none")
        members = zero_shot_labels == c
        if bool(members.any()):
            protos[c] = F.normalize(queries[members].float().mean(dim=0), dim=-1)
    return protos
