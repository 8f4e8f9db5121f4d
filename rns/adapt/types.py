"""The values that flow through the per-image adaptation: class texts, supports, settings, results.

Everything here is a plain container on torch tensors. The adaptation never sees images, models or files,
so that it can be tested on synthetic feature clusters and reused with any backbone.

Class index 0 is always background; indices 1..C-1 are the asked classes in the order the user named them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F

Solver = Literal["fast", "adamw"]
Weighting = Literal["global", "per_term"]
NamelessRelevance = Literal["uniform", "mean"]


@dataclass(frozen=True)
class ClassText:
    """Text features of every class, index 0 being background.

    `vectors[c]` is a `[k_c, d]` tensor of text vectors (k_c >= 1) or None for a class with no usable name
    (an instance such as "my-backpack", known only from its examples). A class may have several vectors
    because background is usually described by several words ("sky", "wall", "road", ...): its zero-shot
    logit is then the best match over them. Vectors are L2-normalised on construction.
    `names` is used only to say which class a problem is about.
    """

    vectors: tuple[torch.Tensor | None, ...]
    names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.vectors:
            raise ValueError("ClassText needs at least one class (index 0 is background)")
        dims = {v.shape[-1] for v in self.vectors if v is not None}
        if len(dims) > 1:
            raise ValueError(f"text vectors of different dimensions: {sorted(dims)}")
        cleaned: list[torch.Tensor | None] = []
        for c, v in enumerate(self.vectors):
            if v is None:
                cleaned.append(None)
                continue
            v = v.reshape(-1, v.shape[-1]) if v.dim() == 1 else v
            if v.dim() != 2 or v.shape[0] == 0:
                raise ValueError(f"text of class {c} must be [k, d] with k >= 1, got {tuple(v.shape)}")
            cleaned.append(F.normalize(v.float(), dim=-1))
        object.__setattr__(self, "vectors", tuple(cleaned))
        if self.names and len(self.names) != len(self.vectors):
            raise ValueError(f"{len(self.names)} names for {len(self.vectors)} classes")

    @classmethod
    def from_list(cls, vectors: list[torch.Tensor | None], names: list[str] | None = None) -> ClassText:
        return cls(tuple(vectors), tuple(names or ()))

    @property
    def num_classes(self) -> int:
        return len(self.vectors)

    @property
    def dim(self) -> int | None:
        """Feature dimension, or None when no class has text."""
        return next((v.shape[-1] for v in self.vectors if v is not None), None)

    def name(self, c: int) -> str:
        return self.names[c] if self.names else f"class {c}"

    def has_text(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """`[C]` bool: which classes have at least one text vector."""
        return torch.tensor([v is not None for v in self.vectors], dtype=torch.bool, device=device)

    def stacked(self, device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
        """All text vectors as one `[K, d]` matrix plus the `[K]` class index owning each row."""
        rows = [v for v in self.vectors if v is not None]
        if not rows:
            raise ValueError("no class has text")
        owners = [torch.full((v.shape[0],), c, dtype=torch.long) for c, v in enumerate(self.vectors)
                  if v is not None]
        return torch.cat(rows).to(device), torch.cat(owners).to(device)

    def without_text(self) -> ClassText:
        """The same classes with every text removed (the "no text" ablation)."""
        return ClassText(tuple(None for _ in self.vectors), self.names)

    def with_prior(self, prior: torch.Tensor | None) -> ClassText:
        """The same classes with every nameless class described by `prior` (`[d]`), the neutral text prior.

        The reference replaces a nameless class's text by the prior everywhere text is read (zero-shot
        labels, fused anchors, pseudo targets), so that each class has a column to score. None: unchanged.
        """
        if prior is None:
            return self
        return ClassText(tuple(prior.reshape(1, -1) if v is None else v for v in self.vectors), self.names)


@dataclass(frozen=True)
class SupportSet:
    """Visual evidence for one image: the retrieved per-image prototypes and the class-level prototypes.

    `vectors [m, d]` / `labels [m]` are the retrieved rows (labels are class indices, 0 = background);
    `class_vectors [C, d]` holds the class-level prototype of every class, meaningful only where
    `has_visual [C]` is True.
    """

    vectors: torch.Tensor
    labels: torch.Tensor
    class_vectors: torch.Tensor
    has_visual: torch.Tensor

    def __post_init__(self) -> None:
        m = self.vectors.shape[0]
        if self.vectors.dim() != 2 or self.labels.shape != (m,):
            raise ValueError(f"support vectors {tuple(self.vectors.shape)} and labels "
                             f"{tuple(self.labels.shape)} do not match")
        if self.class_vectors.dim() != 2 or self.has_visual.shape != (self.class_vectors.shape[0],):
            raise ValueError("class_vectors must be [C, d] and has_visual [C]")
        if m and self.class_vectors.shape[1] != self.vectors.shape[1]:
            raise ValueError("support rows and class prototypes have different dimensions")
        if m and (int(self.labels.min()) < 0 or int(self.labels.max()) >= self.num_classes):
            raise ValueError(f"support labels must lie in [0, {self.num_classes})")

    @classmethod
    def empty(cls, num_classes: int, dim: int, device: torch.device | str = "cpu") -> SupportSet:
        return cls(torch.zeros(0, dim, device=device), torch.zeros(0, dtype=torch.long, device=device),
                   torch.zeros(num_classes, dim, device=device),
                   torch.zeros(num_classes, dtype=torch.bool, device=device))

    @property
    def num_classes(self) -> int:
        return int(self.class_vectors.shape[0])

    @property
    def num_rows(self) -> int:
        return int(self.vectors.shape[0])

    @property
    def is_empty(self) -> bool:
        return self.num_rows == 0 and not bool(self.has_visual.any())

    def to(self, device: torch.device | str) -> SupportSet:
        return SupportSet(self.vectors.to(device).float(), self.labels.to(device).long(),
                          self.class_vectors.to(device).float(), self.has_visual.to(device).bool())


@dataclass(frozen=True)
class AdaptConfig:
    """Every setting of the adaptation; the defaults are the reference settings of the method.

    `use_text=False` is the reference's `use_text: false` setting, also taken whenever no class has text
    (an image-only backbone, or a memory whose classes all have no name): no fused anchors, uniform
    relevance, the head trained on the retrieved rows alone; a class without examples is then refused.
    `visual_anchors_without_text=True` (an rns option) adds, in that setting, each class's class-level
    prototype as one anchor, retrieved or not. `nameless_relevance` decides relevance when some class has
    no name: "uniform" (the reference: every class weighs the same), or "mean" (an rns option: the named
    classes are scored and a nameless one gets their mean weight).
    The ablation switches: `use_relevance=False` weighs all classes equally;
    `use_retrieval=False` makes the retrieval step return every support row instead of the nearest ones;
    a single value in `lambdas` keeps one fused anchor per class.
    """

    k: int = 4
    lambdas: tuple[float, ...] = (0.9, 0.8, 0.6, 0.4, 0.2, 0.0)
    temperature: float = 100.0
    relevance_temperature: float = 10.0
    support_weight: float = 1.0
    anchor_weight: float = 1.5
    pseudo_weight: float = 0.2
    # "adamw": the reference's 700 full-batch AdamW steps; "fast": the same trajectory in `fast_steps`
    # coarser steps (an option: it does not reach the reference's labels closely enough to be the default).
    solver: Solver = "adamw"
    fast_steps: int = 70
    lr: float = 2e-3
    weight_decay: float = 5e-4
    steps: int = 700
    seed: int = 0  # the head's initial weights (Kaiming-uniform from this seed)
    # "global": sample weights L1-normalised over all samples (the reference); "per_term": within each term.
    weighting: Weighting = "global"
    use_text: bool = True
    visual_anchors_without_text: bool = False
    nameless_relevance: NamelessRelevance = "uniform"
    use_relevance: bool = True
    use_retrieval: bool = True
    # Anchors only for visual classes that some query actually retrieved (as the reference code does);
    # False gives anchors to every class with a class-level prototype.
    anchors_need_retrieval: bool = True
    background_threshold: float | None = None
    # With no support at all: fit a head on pseudo prototypes instead of returning the zero-shot result.
    pseudo_only_adaptation: bool = False

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"k must be >= 1, got {self.k}")
        if not self.lambdas or any(not 0.0 <= lam <= 1.0 for lam in self.lambdas):
            raise ValueError(f"lambdas must be a non-empty list of values in [0, 1], got {self.lambdas}")
        if self.solver not in ("fast", "adamw"):
            raise ValueError(f"solver must be 'fast' or 'adamw', got {self.solver!r}")
        if self.nameless_relevance not in ("uniform", "mean"):
            raise ValueError(
                f"nameless_relevance must be 'uniform' or 'mean', got {self.nameless_relevance!r}"
            )
        if self.weighting not in ("global", "per_term"):
            raise ValueError(f"weighting must be 'global' or 'per_term', got {self.weighting!r}")
        if self.steps < 1 or self.fast_steps < 1:
            raise ValueError(f"steps and fast_steps must be >= 1, got {self.steps}, {self.fast_steps}")
        if self.background_threshold is not None and not 0.0 <= self.background_threshold <= 1.0:
            raise ValueError(f"background_threshold must lie in [0, 1], got {self.background_threshold}")


@dataclass
class AdaptResult:
    """Class scores of every query.

    `logits [n, C]` may hold -inf for a class that cannot be predicted (no text in a zero-shot pass);
    `probs [n, C]` is their softmax; `labels [n]` is the argmax after the optional background threshold.
    `timings` are seconds per stage; `diagnostics` says what the adaptation did (see `score_queries`).
    """

    logits: torch.Tensor
    probs: torch.Tensor
    labels: torch.Tensor
    timings: dict[str, float] = field(default_factory=dict)
    diagnostics: dict[str, object] = field(default_factory=dict)
