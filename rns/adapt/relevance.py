"""Step 2: how likely each class is to be in this image, `w_c = softmax_c(T * g . t_c)`.

`g` is the normalised mean of the image's query features, so the weights describe the image as a whole.
They down-weight, in the head's loss, the classes that the image probably does not contain, so that the
supports of an unlikely class do not pull the head towards it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rns.adapt.types import ClassText, NamelessRelevance
from rns.adapt.zero_shot import text_similarity


def class_relevance(queries: torch.Tensor, text: ClassText, temperature: float = 10.0,
                    enabled: bool = True, nameless: NamelessRelevance = "uniform") -> torch.Tensor:
    """`[C]` relevance weights summing to 1.

    Every class weighs the same when `enabled` is False, when no class has text, and, by default
    (`nameless="uniform"`, the reference's rule, `core/rns.py:102-104`), as soon as any class has no
    name: a nameless class cannot be scored against the image, and the reference then scores none.
    `nameless="mean"` (an rns option) scores the named classes and gives a nameless class their mean
    weight (neither favoured nor penalised), all renormalised to sum to 1.
    """
    num_classes = text.num_classes
    has_text = text.has_text(queries.device)
    all_named = bool(has_text.all())
    if not enabled or not bool(has_text.any()) or (nameless == "uniform" and not all_named):
        return torch.full((num_classes,), 1.0 / num_classes, device=queries.device)
    image = F.normalize(queries.float().mean(dim=0, keepdim=True), dim=-1)
    logits = temperature * text_similarity(image, text)[0]
    weights = torch.softmax(logits, dim=0)  # classes without text: exactly 0 here
    weights = torch.where(has_text, weights, weights[has_text].mean())
    return weights / weights.sum()
