"""Per-image adaptation on feature tensors (no backbone, no images): RNS steps 1-7 minus upsampling.

    result = score_queries(queries, text, support, config)

`queries` are L2-normalised patch or region features `[n, d]`; `text` holds each class's text vectors
(index 0 = background); `support` is what `retrieve_support` found in the memory for these queries.
See docs/ARCHITECTURE.md ("Adaptation") for the contract and the choices made where the method is silent.
"""

from __future__ import annotations

from rns.adapt.method import score_queries, zero_shot
from rns.adapt.retrieval import ArraySource, RowSource, nearest_rows, retrieve_support
from rns.adapt.types import AdaptConfig, AdaptResult, ClassText, SupportSet

__all__ = [
    "AdaptConfig",
    "AdaptResult",
    "ArraySource",
    "ClassText",
    "RowSource",
    "SupportSet",
    "nearest_rows",
    "retrieve_support",
    "score_queries",
    "zero_shot",
]
