"""Where a backbone's weights come from, found without loading them.

Three sources, in a user's order of preference (see WEIGHTS.md in the design notes):

1. a named open_clip pretrained tag, downloaded and cached by open_clip / huggingface_hub;
2. a local checkpoint file (`--checkpoint FILE`, `RNS_CHECKPOINT`) for machines with no internet;
3. `random`: randomly initialised weights, for tests only, and labelled so wherever weights are shown.

This module only *locates* weights (cache lookups, file checks, a quick reachability probe); building the
model is `registry.py`'s job. Keeping the two apart lets `rns info` say whether the weights are usable
offline without paying for a model load, and lets the loader fail in milliseconds instead of after a
minute of network retries when the machine is offline and nothing is cached.
"""

from __future__ import annotations

import hashlib
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from rns.errors import InputError, WeightsUnavailableError

RANDOM_WEIGHTS = "random"
RANDOM_LABEL = "random init: for tests only"
RANDOM_SEED = 0  # random weights are seeded so that two processes build the very same test model

_HF_WEIGHTS = "open_clip_pytorch_model.bin"  # open_clip's default file name in a hub repository
_HF_SAFE_WEIGHTS = "open_clip_model.safetensors"  # preferred by open_clip when present
_HASHED_PREFIX = 1 << 20  # a checkpoint is identified by its size and a hash of its first MiB


@dataclass(frozen=True)
class WeightsSource:
    """Resolved weights: what to show the user, what to record, and where the file is (if local).

    `kind` is "tag", "file" or "random". `local_file` is the file to load (a cached tag or the user's
    checkpoint) or None when the tag must still be downloaded, or for random weights.
    """

    kind: str
    label: str
    identity: dict
    local_file: Path | None = None
    tag_config: dict | None = None


@dataclass(frozen=True)
class WeightsCheck:
    """Whether weights can be used right now without the network, and a one-line explanation."""

    label: str
    available_offline: bool
    detail: str


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def hub_offline_forced() -> bool:
    """True when the user told huggingface_hub to stay offline (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE)."""
    return _truthy(os.environ.get("HF_HUB_OFFLINE")) or _truthy(os.environ.get("TRANSFORMERS_OFFLINE"))


def _hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT") or "https://huggingface.co"


def hub_reachable(timeout_s: float = 3.0) -> bool:
    """A quick TCP probe of the model hub, so an offline machine fails fast instead of retrying for ~50 s.

    Behind an HTTP(S) proxy a direct connection proves nothing, so the hub is then assumed reachable and
    open_clip is left to try.
    """
    if hub_offline_forced():
        return False
    if any(os.environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    parsed = urlparse(_hub_endpoint())
    host = parsed.hostname or "huggingface.co"
    port = parsed.port or (443 if parsed.scheme != "http" else 80)
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError:
        return False
    return True


def _tag_candidates(tag_cfg: dict) -> list[tuple[str, str]]:
    """(repo_id, filename) pairs that open_clip would fetch for a tag, in its order of preference."""
    hub = tag_cfg.get("hf_hub") or ""
    if not hub:
        return []
    repo_id, filename = os.path.split(hub)
    if not filename:
        return [(repo_id, _HF_SAFE_WEIGHTS), (repo_id, _HF_WEIGHTS)]
    candidates = []
    if filename.endswith((".bin", ".pth")):
        candidates.append((repo_id, filename[:-4] + ".safetensors"))
    candidates.append((repo_id, filename))
    return candidates


def cached_tag_file(tag_cfg: dict) -> Path | None:
    """The locally cached weights file for an open_clip tag, found without touching the network."""
    if tag_cfg.get("file"):
        path = Path(tag_cfg["file"])
        return path if path.is_file() else None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # open_clip then falls back to plain URLs
        try_to_load_from_cache = None
    if try_to_load_from_cache is not None:
        for repo_id, filename in _tag_candidates(tag_cfg):
            found = try_to_load_from_cache(repo_id=repo_id, filename=filename)
            if isinstance(found, str) and os.path.isfile(found):
                return Path(found)
    url = tag_cfg.get("url") or ""
    if url:  # open_clip's own URL cache
        path = Path("~/.cache/clip").expanduser() / os.path.basename(url)
        if path.is_file():
            return path
    return None


def checkpoint_identity(path: Path) -> dict:
    """Identify a checkpoint cheaply but reliably: file name, size and a hash of its first MiB.

    Hashing the whole file (hundreds of MiB) on every run would be slow; two different checkpoints of the
    same size whose first MiB agree do not occur in practice.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        digest.update(handle.read(_HASHED_PREFIX))
    return {"file": path.name, "size": path.stat().st_size, "sha256_first_mib": digest.hexdigest()[:16]}


def _pretrained_config(model: str, tag: str) -> dict:
    from open_clip.pretrained import get_pretrained_cfg, list_pretrained_tags_by_model

    cfg = get_pretrained_cfg(model, tag)
    if not cfg:
        known = ", ".join(list_pretrained_tags_by_model(model)) or "none"
        raise InputError(
            f"--pretrained {tag!r} is not an open_clip tag for model {model} (known tags: {known}); "
            f"pick one of those, or pass --checkpoint FILE"
        )
    return dict(cfg)


def unavailable_message(model: str, tag: str, tried: str,
                        online_fix: str = "connect to the internet once") -> str:
    """The one-line explanation for missing tag weights: what was tried and the two ways out."""
    return (
        f"weights {model} / {tag} are not available: {tried}; either {online_fix} so open_clip downloads "
        f"and caches them, or pass --checkpoint FILE (or set RNS_CHECKPOINT)"
    )


def locate_weights(model: str, pretrained: str, checkpoint: str | os.PathLike | None) -> WeightsSource:
    """Decide which weights to use, without loading them; raises a one-line error if there are none.

    A checkpoint, when given, wins over the tag: a user who names a file means that file.
    """
    if checkpoint:
        path = Path(checkpoint).expanduser()
        if not path.is_file():
            raise InputError(
                f"checkpoint {path} does not exist or is not a file; pass an existing open_clip checkpoint "
                f"for {model} (or unset RNS_CHECKPOINT)"
            )
        path = path.resolve()
        return WeightsSource("file", f"file:{path}", checkpoint_identity(path), local_file=path)
    if pretrained == RANDOM_WEIGHTS:
        return WeightsSource("random", RANDOM_LABEL, {"random_init_seed": RANDOM_SEED})
    tag_cfg = _pretrained_config(model, pretrained)
    cached = cached_tag_file(tag_cfg)
    identity = {"tag": pretrained}
    if cached is not None:
        return WeightsSource("tag", pretrained, identity, local_file=cached, tag_config=tag_cfg)
    if hub_offline_forced():
        raise WeightsUnavailableError(
            unavailable_message(model, pretrained, "not in the open_clip cache and HF_HUB_OFFLINE is set",
                                "unset HF_HUB_OFFLINE and connect to the internet once")
        )
    if not hub_reachable():
        raise WeightsUnavailableError(
            unavailable_message(
                model, pretrained, f"not in the open_clip cache and the model hub ({_hub_endpoint()}) is "
                "unreachable"
            )
        )
    return WeightsSource("tag", pretrained, identity, local_file=None, tag_config=tag_cfg)


def check_weights(model: str, pretrained: str, checkpoint: str | os.PathLike | None) -> WeightsCheck:
    """Say whether the weights are usable offline right now, without loading them or using the network."""
    if checkpoint:
        path = Path(checkpoint).expanduser()
        if path.is_file():
            return WeightsCheck(f"file:{path.resolve()}", True, "local checkpoint file")
        return WeightsCheck(f"file:{path}", False, f"{path} does not exist; pass an existing checkpoint file")
    if pretrained == RANDOM_WEIGHTS:
        return WeightsCheck(RANDOM_LABEL, True, "built in memory, no file needed")
    try:
        tag_cfg = _pretrained_config(model, pretrained)
    except InputError as error:
        return WeightsCheck(pretrained, False, str(error))
    cached = cached_tag_file(tag_cfg)
    if cached is not None:
        return WeightsCheck(pretrained, True, f"cached by open_clip at {cached}")
    return WeightsCheck(
        pretrained,
        False,
        "not cached; connect to the internet once (the first run downloads and caches them), "
        "or pass --checkpoint FILE (or set RNS_CHECKPOINT)",
    )
