"""What a memory's prototypes were made with, and the one check that refuses rows made otherwise.

A memory records one fingerprint: the backbone's (model, weights, feature variant, resize and window
settings, feature format) plus how support masks were pooled. Rows made under another fingerprint are
never mixed in. Segmenting only needs the backbone's part to match: the pooling of the stored examples
does not change the features of a new photo, so a segmenter accepts whichever pooling the memory used.
"""

from __future__ import annotations

from typing import Any

from rns.errors import InputError

POOLING_KEY = "pooling"


def support_fingerprint(backbone_fingerprint: dict[str, Any], pooling: str) -> dict[str, Any]:
    """The fingerprint stored with prototypes extracted by this backbone with this pooling."""
    return {**backbone_fingerprint, POOLING_KEY: pooling}


def check_memory_fingerprint(memory: Any, backbone_fingerprint: dict[str, Any],
                             pooling: str | None = None) -> None:
    """Refuse a memory whose rows were made by another extraction, in one line that says what to do.

    `pooling=None` (segmenting) accepts the memory's own pooling. A memory from an older rns, whose
    features were computed another way, gets its own message: it has to be rebuilt from the examples.
    """
    stored = memory.fingerprint
    if stored is None:
        return
    stored_format = stored.get("format")
    current_format = backbone_fingerprint.get("format")
    both_known = isinstance(stored_format, int) and isinstance(current_format, int)
    # Formats count per backbone family: an EfficientNet-Lite memory is not an "older" CLIP one.
    same_family = stored.get("family") == backbone_fingerprint.get("family")
    older = both_known and same_family and stored_format < current_format
    if older:
        raise InputError(
            f"memory {memory.path} was built by an older rns (feature format {stored_format}, now "
            f"{current_format}) whose prototypes are computed differently; rebuild it: run "
            "`rns add-support` with your examples into a new --memory (or remove this one)"
        )
    wanted = support_fingerprint(backbone_fingerprint, pooling or stored.get(POOLING_KEY, ""))
    memory.check_fingerprint(wanted)
