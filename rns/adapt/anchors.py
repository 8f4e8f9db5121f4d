"""Steps 4 and 5: fused text+visual anchors, and pseudo prototypes for classes without visual support.

An anchor `f_c(l) = normalize(l * v_c + (1 - l) * t_c)` sits between what the examples of a class look
like (`v_c`) and what its name means (`t_c`). Training the head on the whole grid of l lets it find, per
image, the blend that separates the classes best, instead of fixing one hand-tuned mix.

A class with several text vectors (background: "sky", "wall", ...) gets one anchor per (l, vector) pair;
its anchors then share the class's weight (see `AnchorSet.share`) so that a class with many words is not
worth more than a class with one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from rns.adapt.types import ClassText


@dataclass(frozen=True)
class AnchorSet:
    """Anchors `[N, d]`, the class each stands for `[N]`, and each one's share of its class's weight `[N]`."""

    features: torch.Tensor
    labels: torch.Tensor
    share: torch.Tensor

    @classmethod
    def empty(cls, dim: int, device: torch.device | str) -> AnchorSet:
        return cls(torch.zeros(0, dim, device=device), torch.zeros(0, dtype=torch.long, device=device),
                   torch.zeros(0, device=device))

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
    if text_vectors is None:
        return F.normalize(visual[None], dim=-1)
    lam = torch.tensor(lambdas, device=visual.device, dtype=visual.dtype)[:, None, None]
    mixed = lam * visual[None, None] + (1.0 - lam) * text_vectors[None]
    return F.normalize(mixed.reshape(-1, visual.shape[-1]), dim=-1)


def build_anchor_set(prototypes: dict[int, torch.Tensor], text: ClassText, lambdas: tuple[float, ...],
                     prior: torch.Tensor | None, dim: int, device: torch.device | str) -> AnchorSet:
    """Fused anchors of the given classes from their prototypes (visual or pseudo).

    Ordered as the reference orders them: lambda-major, then class (ascending), then text vector. A class
    without text is fused with `prior` (the neutral text prior) instead of its own text.
    """
    per_class = []  # (class, anchors, text vectors per lambda; None: no text, one visual anchor)
    for c, proto in sorted(prototypes.items()):
        vectors = text.vectors[c]
        tvec = vectors.to(device) if vectors is not None else (None if prior is None else prior[None])
        anchors = fuse(proto.to(device), tvec, lambdas)  # [L * k, d] lambda-major, or [1, d] without text
        per_class.append((c, anchors, None if tvec is None else tvec.shape[0]))
    if not per_class:
        return AnchorSet.empty(dim, device)
    blocks, labels, shares = [], [], []
    for step in range(len(lambdas)):
        for c, anchors, k in per_class:
            if k is None and step > 0:
                continue  # the visual prototype alone is listed once, with the first lambda
            block = anchors if k is None else anchors[step * k:(step + 1) * k]
            blocks.append(block)
            labels.append(torch.full((block.shape[0],), c, dtype=torch.long, device=device))
            shares.append(torch.full((block.shape[0],), 1.0 / (k or 1), device=device))
    return AnchorSet(torch.cat(blocks), torch.cat(labels), torch.cat(shares))


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
