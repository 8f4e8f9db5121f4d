"""Text features for class prompts: the 80 ImageNet templates, averaged, normalised, cached.

A single "a photo of a car." is a noisy estimate of what "car" means to CLIP; averaging the normalised
embeddings of the same name in 80 contexts (the template list the CLIP authors used for ImageNet
zero-shot classification) gives a steadier class vector. Encoding 80 sentences is the expensive part of a
text query, and the same class names recur in every image of a folder run, so results are cached per
prompt: in memory always, and on disk when a cache directory is given, keyed by the backbone fingerprint
so a cache written by other weights is never read. Both caches are bounded (a server that takes class
names from anyone must not grow without end): the least recently used prompts are dropped first, from
memory past `memory_entries`, from disk past `disk_entries` files per backbone.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from rns.io.atomic import atomic_write

IMAGENET_TEMPLATES: tuple[str, ...] = (
    "a bad photo of a {}.",
    "a photo of many {}.",
    "a sculpture of a {}.",
    "a photo of the hard to see {}.",
    "a low resolution photo of the {}.",
    "a rendering of a {}.",
    "graffiti of a {}.",
    "a bad photo of the {}.",
    "a cropped photo of the {}.",
    "a tattoo of a {}.",
    "the embroidered {}.",
    "a photo of a hard to see {}.",
    "a bright photo of a {}.",
    "a photo of a clean {}.",
    "a photo of a dirty {}.",
    "a dark photo of the {}.",
    "a drawing of a {}.",
    "a photo of my {}.",
    "the plastic {}.",
    "a photo of the cool {}.",
    "a close-up photo of a {}.",
    "a black and white photo of the {}.",
    "a painting of the {}.",
    "a painting of a {}.",
    "a pixelated photo of the {}.",
    "a sculpture of the {}.",
    "a bright photo of the {}.",
    "a cropped photo of a {}.",
    "a plastic {}.",
    "a photo of the dirty {}.",
    "a jpeg corrupted photo of a {}.",
    "a blurry photo of the {}.",
    "a photo of the {}.",
    "a good photo of the {}.",
    "a rendering of the {}.",
    "a {} in a video game.",
    "a photo of one {}.",
    "a doodle of a {}.",
    "a close-up photo of the {}.",
    "a photo of a {}.",
    "the origami {}.",
    "the {} in a video game.",
    "a sketch of a {}.",
    "a doodle of the {}.",
    "a origami {}.",
    "a low resolution photo of a {}.",
    "the toy {}.",
    "a rendition of the {}.",
    "a photo of the clean {}.",
    "a photo of a large {}.",
    "a rendition of a {}.",
    "a photo of a nice {}.",
    "a photo of a weird {}.",
    "a blurry photo of a {}.",
    "a cartoon {}.",
    "art of a {}.",
    "a sketch of the {}.",
    "a embroidered {}.",
    "a pixelated photo of a {}.",
    "itap of the {}.",
    "a jpeg corrupted photo of the {}.",
    "a good photo of a {}.",
    "a plushie {}.",
    "a photo of the nice {}.",
    "a photo of the small {}.",
    "a photo of the weird {}.",
    "the cartoon {}.",
    "art of the {}.",
    "a drawing of the {}.",
    "a photo of the large {}.",
    "a black and white photo of a {}.",
    "the plushie {}.",
    "a dark photo of a {}.",
    "itap of a {}.",
    "graffiti of the {}.",
    "a toy {}.",
    "itap of my {}.",
    "a photo of a cool {}.",
    "a photo of a small {}.",
    "a tattoo of the {}.",
)


# A cached prompt costs `dim` floats (2-4 kB) in memory and ~3-5 kB on disk; far more class names than
# any vocabulary in use, few enough that neither cache can grow past tens of megabytes.
DEFAULT_MEMORY_ENTRIES = 4096
DEFAULT_DISK_ENTRIES = 4096


def fingerprint_key(fingerprint: dict) -> str:
    """A short stable key for a fingerprint, used to separate on-disk caches of different backbones."""
    blob = json.dumps(fingerprint, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


class TextFeatureCache:
    """Template-averaged text features per prompt, computed once.

    `encode_sentences` maps a list of sentences to `[n, d]` (unnormalised) embeddings; it is the model's
    text tower with its tokenizer. Returned tensors live on `device`; cached copies are kept on the CPU in
    float32, so a cached prompt costs `d` floats. At most `memory_entries` prompts stay in memory and
    `disk_entries` files on disk (per backbone fingerprint), least recently used dropped first.
    """

    def __init__(self, encode_sentences: Callable[[list[str]], torch.Tensor], dim: int, device: torch.device,
                 fingerprint: dict, disk_dir: Path | None = None,
                 templates: tuple[str, ...] = IMAGENET_TEMPLATES,
                 memory_entries: int = DEFAULT_MEMORY_ENTRIES,
                 disk_entries: int = DEFAULT_DISK_ENTRIES) -> None:  # fmt: skip
        self._encode_sentences = encode_sentences
        self._dim = dim
        self._device = device
        self._templates = templates
        self._memory_entries = max(1, memory_entries)
        self._disk_entries = max(1, disk_entries)
        self._memory: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._disk_dir = Path(disk_dir) / fingerprint_key(fingerprint) if disk_dir else None

    def __len__(self) -> int:
        return len(self._memory)

    def encode(self, prompts: list[str]) -> torch.Tensor:
        """[n, d] normalised features, one row per prompt, in the order given."""
        if isinstance(prompts, str):
            raise TypeError("encode_text takes a list of prompts, not a single string")
        features = {prompt: self._feature(prompt) for prompt in dict.fromkeys(prompts)}
        if not prompts:
            return torch.empty(0, self._dim, device=self._device)
        return torch.stack([features[p] for p in prompts]).to(self._device)

    def _feature(self, prompt: str) -> torch.Tensor:
        """One prompt's feature: from memory, else from disk, else computed (and stored)."""
        feature = self._memory.get(prompt)
        if feature is not None:
            self._memory.move_to_end(prompt)
            return feature
        feature = self._load(prompt)
        if feature is None:
            feature = self._compute(prompt)
            self._store(prompt, feature)
        self._memory[prompt] = feature
        while len(self._memory) > self._memory_entries:
            self._memory.popitem(last=False)
        return feature

    @torch.inference_mode()
    def _compute(self, prompt: str) -> torch.Tensor:
        sentences = [template.format(prompt) for template in self._templates]
        per_template = F.normalize(self._encode_sentences(sentences).float(), dim=-1)
        return F.normalize(per_template.mean(dim=0), dim=-1).cpu()

    def _path(self, prompt: str) -> Path | None:
        if self._disk_dir is None:
            return None
        return self._disk_dir / (hashlib.sha256(prompt.encode()).hexdigest()[:24] + ".pt")

    def _load(self, prompt: str) -> torch.Tensor | None:
        path = self._path(prompt)
        if path is None or not path.is_file():
            return None
        try:
            stored = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # a damaged cache entry is recomputed, never trusted
            return None
        if not isinstance(stored, dict) or stored.get("prompt") != prompt:
            return None
        features = stored.get("features")
        if not isinstance(features, torch.Tensor) or tuple(features.shape) != (self._dim,):
            return None
        with contextlib.suppress(OSError):  # recently used: the last to be dropped
            os.utime(path)
        return features.float()

    def _store(self, prompt: str, feature: torch.Tensor) -> None:
        path = self._path(prompt)
        if path is None:
            return
        try:
            entry = {"prompt": prompt, "features": feature}
            atomic_write(path, lambda stream: torch.save(entry, stream))
            self._trim_disk()
        except OSError:  # the disk cache is an optimisation; a read-only cache dir must not fail a run
            return

    def _trim_disk(self) -> None:
        """Drop the least recently used files past `disk_entries` (cheap next to computing a prompt)."""
        entries = []
        with os.scandir(self._disk_dir) as found:
            for entry in found:
                if entry.name.endswith(".pt") and entry.is_file(follow_symlinks=False):
                    with contextlib.suppress(OSError):
                        entries.append((entry.stat(follow_symlinks=False).st_mtime_ns, entry.path))
        entries.sort()
        for _mtime, path in entries[: max(0, len(entries) - self._disk_entries)]:
            with contextlib.suppress(OSError):
                os.unlink(path)


def encode_tokens_trimmed(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """`model.encode_text(tokens)`, computed on the tokens up to the longest sentence's end only.

    CLIP's text tower is causal and pools the end-of-text token, so the padding after it can change
    nothing; yet open_clip always runs all 77 positions. Prompt templates are about 10-15 tokens long, so
    trimming makes text encoding several times faster on a CPU with identical results. Towers that do not
    have that shape (custom text towers, other pooling) take the ordinary path.
    """
    mask = getattr(model, "attn_mask", None)
    trimmable = (
        getattr(model, "text_pool_type", None) == "argmax"
        and mask is not None
        and hasattr(model, "token_embedding")
        and hasattr(model, "positional_embedding")
    )
    if not trimmable:
        return model.encode_text(tokens)
    length = int(tokens.argmax(dim=-1).max()) + 1
    tokens = tokens[:, :length]
    cast_dtype = model.transformer.get_cast_dtype()
    x = model.token_embedding(tokens).to(cast_dtype) + model.positional_embedding[:length].to(cast_dtype)
    x = model.ln_final(model.transformer(x, attn_mask=mask[:length, :length]))
    pooled = x[torch.arange(x.shape[0], device=x.device), tokens.argmax(dim=-1)]
    projection = model.text_projection
    if projection is None:
        return pooled
    return projection(pooled) if isinstance(projection, torch.nn.Linear) else pooled @ projection
