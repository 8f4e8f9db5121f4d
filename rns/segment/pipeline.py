"""The segmentation pipeline: one request (classes, memory, settings) applied to any number of images.

Building is separate from using, as in segment-anything and open_clip: `build_segmenter` resolves the
backbone, the support memory and the region proposer once, and the returned `Segmenter` segments images
one after another with everything that repeats across images (text features, the memory's class table
and class-level prototypes) computed a single time.

Per image (docs/ARCHITECTURE.md, data flow): dense features -> optional regions -> retrieval from the
memory -> adaptation (zero-shot, relevance, anchors, pseudo prototypes, head fit) -> upsampling -> labels.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from rns.adapt import AdaptConfig, ClassText, SupportSet, retrieve_support, score_queries
from rns.adapt.method import missing_class_error
from rns.adapt.retrieval import merged_class_prototypes
from rns.backbone import ClipBackbone, build_backbone
from rns.backbone.families import no_text_error
from rns.backbone.geometry import ImageGeometry
from rns.errors import DeviceError, InputError
from rns.io.imageio import load_image
from rns.paths import cache_dir, default_memory_path
from rns.segment.background_evidence import background_taught, lone_class_error
from rns.segment.class_plan import memory_class_index, plan_classes
from rns.segment.requested_classes import clean_class_list, parse_class_list
from rns.segment.upsample import BAND_ROWS, upsample_probabilities
from rns.segmentation import BACKGROUND, Segmentation
from rns.teach.fingerprints import check_memory_fingerprint
from rns.teach.retrieval_weights import WeightedSource, weighted_source
from rns.threads import stage_threads
from rns.timing import StageClock
from support_memory import SupportMemory


@dataclass(frozen=True)
class SegmentOptions:
    """How to segment, beyond which classes.

    `zero_shot` ignores the memory (text only). `background` adds class 0 "background" (on for users;
    benchmarks whose label set covers every pixel turn it off). `regions` is "none", "superpixels" or
    "sam". `keep_probabilities` returns per-pixel class probabilities (large; only when saving them).
    """

    zero_shot: bool = False
    background: bool = True
    regions: str = "none"
    sam_checkpoint: str | None = None
    keep_probabilities: bool = False
    adapt: AdaptConfig = field(default_factory=AdaptConfig)


class Segmenter:
    """Segments images for one fixed request. Build it with `build_segmenter` (or directly in tests)."""

    def __init__(
        self,
        backbone: ClipBackbone,
        classes: list[str] | str | None = None,
        *,
        memory: SupportMemory | None = None,
        options: SegmentOptions | None = None,
        region_proposer: object | None = None,
    ) -> None:
        self.backbone = backbone
        self.options = options or SegmentOptions()
        # An image-only backbone (EfficientNet-Lite) reads no class name: the method's no-text setting.
        self.has_text = bool(getattr(backbone, "has_text", True))
        if not self.has_text and self.options.background and not background_taught(memory, classes):
            # Background is learned from examples alone here; with none, every pixel takes an asked class.
            self.options = replace(self.options, background=False)
        # The background threshold applies to pixels, after upsampling; the per-image adaptation runs without
        # it (its patch labels are not used). Both forms are made here, once, not per image.
        self._adapt_config = replace(self.options.adapt, background_threshold=None,
                                     use_text=self.options.adapt.use_text and self.has_text)
        self._pixel_threshold = self.options.adapt.background_threshold if self.options.background else None
        self.memory = None if self.options.zero_shot else memory
        if self.memory is not None:
            check_memory_fingerprint(self.memory, backbone.fingerprint)
        asked = self._asked_classes(classes, memory)
        if self.options.zero_shot and not self.has_text:
            raise no_text_error(backbone.spec.model, asked[0], "cannot be found zero-shot (--zero-shot)")
        # As asked (before background and the memory's spelling): what rebuilds this segmenter elsewhere.
        self.requested_classes = tuple(asked)
        self.plan = plan_classes(asked, memory, background=self.options.background)
        self.region_proposer = region_proposer
        self.text = ClassText.from_list(
            [None if words is None or not self.has_text else backbone.encode_text(list(words))
             for words in self.plan.prompts],
            list(self.plan.names),
        )
        self._class_index = (
            memory_class_index(self.memory, self.plan, background=self.options.background)
            if self._memory_has_rows()
            else None
        )
        self._check_every_class_has_evidence()
        # What retrieval reads: the memory itself, or the memory seen through the retrieval weights that
        # `rns memory audit --apply` stored (only when some entry has one below 1).
        self._rows_source = weighted_source(self.memory) if self._class_index is not None else None
        # The class-level prototypes depend on the memory, not the image: merged once per run.
        self._prototypes = (
            merged_class_prototypes(self._rows_source, self._class_index, len(self.plan.names),
                                    0 if self.options.background else None)  # fmt: skip
            if self._class_index is not None
            else None
        )
        self._description = self._describe()
        self._memory_identity = self.memory.content_id() if self._class_index is not None else None
        if isinstance(self._rows_source, WeightedSource):
            self._memory_identity = f"{self._memory_identity}+{self._rows_source.identity()}"

    # -- construction helpers ----------------------------------------------------------------------------
    @staticmethod
    def _asked_classes(classes: list[str] | str | None, memory: SupportMemory | None) -> list[str]:
        if isinstance(classes, str):
            return parse_class_list(classes)
        if classes:
            return clean_class_list(classes)
        stored = memory.classes() if memory else []
        names = [info.name for info in stored if info.name.casefold() != BACKGROUND]
        if not names:
            raise InputError(
                "no classes to segment: pass --classes \"a,b\" (or add examples with rns add-support first)"
            )
        return names

    def _memory_has_rows(self) -> bool:
        return self.memory is not None and self.memory.n_prototypes > 0

    def _check_every_class_has_evidence(self) -> None:
        """A class with no text must have examples: otherwise nothing could ever predict it."""
        visual = set()
        if self._class_index is not None:
            visual = {label for label in self._class_index.values() if label is not None}
        for label, prompts in enumerate(self.plan.prompts):
            if label in visual:
                continue
            if not self.has_text:
                raise no_text_error(self.backbone.spec.model, self.plan.names[label])
            if prompts is None:
                raise missing_class_error(self.plan.names[label])
        if not self.has_text and len(self.plan.names) == 1:
            raise lone_class_error(self.backbone.spec.model, self.plan.names[0])

    # -- public API --------------------------------------------------------------------------------------
    @property
    def class_names(self) -> list[str]:
        """Output class names; the index is the label id (0 = background when background is on)."""
        return list(self.plan.names)

    def describe(self) -> dict[str, object]:
        """What this segmenter is, for summaries: model, weights, classes, memory, options."""
        return dict(self._description)

    def _describe(self) -> dict[str, object]:
        return {
            "model": self.backbone.spec.model,
            "weights": self.backbone.weights_label,
            "variant": self.backbone.variant,
            "device": str(self.backbone.device),
            "classes": self.class_names,
            "memory": str(self.memory.path) if self.memory is not None else None,
            "memory_prototypes": self.memory.n_prototypes if self.memory is not None else 0,
            "memory_commit": self.memory.commit if self.memory is not None else None,
            "mode": "zero-shot" if self._class_index is None else "rns",
            "regions": self.options.regions,
        }

    def settings(self) -> dict[str, object]:
        """Everything that can change an output pixel, as one JSON-able dict.

        Built generically: every field of `SegmentOptions` (and of its `AdaptConfig`) is in it through
        `asdict`, so a setting added there is covered without touching this method. The memory enters by
        its content identity (which changes with any prototype, class or prompt, and differs between
        memories), not its commit number; the classes with their prompts; the backbone by its fingerprint;
        the device type, since CPU and GPU arithmetic may round differently.
        """
        return {
            "backbone": self.backbone.fingerprint,
            "device": self.backbone.device.type,
            "classes": asdict(self.plan),
            # Keeping probabilities changes which files can be written, not a pixel: a run that saved
            # them (--save probs, --export coco) leaves outputs a plain rerun takes as done (and one asking
            # for probs redoes only images whose record lacks them). Always False keeps old keys valid.
            "options": {**asdict(self.options), "keep_probabilities": False},
            "memory": self._memory_identity,
            "regions": self.region_proposer.settings_key() if self.region_proposer is not None else None,
        }

    def settings_key(self) -> str:
        """A hash of `settings()` (used by folder runs to know which outputs are up to date)."""
        blob = json.dumps(self.settings(), sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:32]

    def segment(self, image: Image.Image | np.ndarray | str | os.PathLike) -> Segmentation:
        """Segment one image (a PIL image, an RGB/grey array, or a path)."""
        image = _as_pil(image)
        clock = StageClock(self.backbone.device)
        features = self.backbone.dense_features(image)  # [gh, gw, d]
        return self.segment_features(image, features, backbone_seconds=clock.lap())

    def segment_many(self, images: list[Image.Image | np.ndarray | str | os.PathLike]) -> list[Segmentation]:
        """Segment several images, their backbone forwards batched together (see `dense_features_many`).

        Element i equals `segment(images[i])`: only the backbone is shared; retrieval, the head fit,
        upsampling and regions stay per image. Each image's `backbone` timing is its share of the batch.
        A user error in any image raises for the whole call: callers that must isolate a bad image (the
        folder runner) then segment the batch one image at a time. So does running out of GPU memory
        (a `DeviceError` naming the fix), since the images may well fit one at a time.
        """
        pictures = [_as_pil(image) for image in images]
        if not pictures:
            return []
        clock = StageClock(self.backbone.device)
        many = getattr(self.backbone, "dense_features_many", None)
        try:
            if callable(many):
                features = many(pictures)
            else:  # a backbone without batching (a test double): one forward per image, same results
                features = [self.backbone.dense_features(picture) for picture in pictures]
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            raise DeviceError(f"the GPU ran out of memory for {len(pictures)} images in one batch; use a "
                              "smaller --batch-size (or auto)") from None
        share = clock.lap() / len(pictures)
        return [self.segment_features(picture, feats, backbone_seconds=share)
                for picture, feats in zip(pictures, features, strict=True)]

    def segment_features(
        self, image: Image.Image, features: torch.Tensor, *, backbone_seconds: float | None = None
    ) -> Segmentation:
        """Segment an image whose dense features were already computed by this segmenter's backbone.

        Benchmarks use it to compare methods on the same features without recomputing them.
        """
        timings: dict[str, float] = {} if backbone_seconds is None else {"backbone": backbone_seconds}
        clock = StageClock(self.backbone.device)
        gh, gw, dim = features.shape
        geometry = self.backbone.geometry(image.width, image.height)

        region_map = None
        if self.region_proposer is not None:
            region_map = self.region_proposer.propose(image)
            timings["regions"] = clock.lap()
            from rns.regions import pool_regions

            queries = pool_regions(features, region_map, geometry)
        else:
            queries = features.reshape(gh * gw, dim)

        # The stages after the backbone are small: each runs on the threads its largest op can use (one,
        # for a photo of ordinary size; see rns.threads), then the caller's setting comes back.
        rows = self.memory.n_prototypes if self._class_index is not None else 0
        with stage_threads(queries.shape[0] * rows * dim):
            support = self._retrieve(queries)
        timings["retrieval"] = clock.lap()

        with stage_threads(queries.shape[0] * dim * len(self.plan.names)):
            result = score_queries(queries, self.text, support, self._adapt_config)
        timings.update({f"adapt_{name}": seconds for name, seconds in result.timings.items()})
        clock.lap()

        with stage_threads(len(self.plan.names) * min(BAND_ROWS, image.height) * gw * image.width):
            labels, probabilities = self._to_pixels(result.probs, geometry, region_map, self._pixel_threshold)
        timings["upsample"] = clock.lap()
        timings["total"] = clock.total() + (backbone_seconds or 0.0)
        info = {
            **self._description,
            "mode": result.diagnostics.get("mode", "zero-shot"),
            "grid": [gh, gw],
            "num_queries": int(queries.shape[0]),
            "num_retrieved": int(support.num_rows) if support is not None else 0,
            "diagnostics": result.diagnostics,
        }
        return Segmentation(labels, self.class_names, probabilities, timings, info)

    # -- steps -------------------------------------------------------------------------------------------
    def _retrieve(self, queries: torch.Tensor) -> SupportSet | None:
        if self._class_index is None:
            return None
        return retrieve_support(
            queries,
            self._rows_source,
            self._class_index,
            len(self.plan.names),
            self.options.adapt,
            unmapped=0 if self.options.background else None,
            prototypes=self._prototypes,
        )

    def _to_pixels(
        self,
        probs: torch.Tensor,
        geometry: ImageGeometry,
        region_map: np.ndarray | None,
        threshold: float | None,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        keep = self.options.keep_probabilities
        if region_map is None:
            grid_probs = probs.reshape(*geometry.grid, -1)
            return upsample_probabilities(grid_probs, geometry.original, geometry=geometry,
                                          background_threshold=threshold, keep=keep)
        from rns.regions import region_scores_to_pixels, regions_to_pixels

        confidence, region_labels = probs.max(dim=1)
        if threshold is not None:
            below = confidence < threshold
            region_labels = torch.where(below, torch.zeros_like(region_labels), region_labels)
        labels = regions_to_pixels(region_labels.cpu(), region_map)
        labels = labels.astype(np.uint8 if probs.shape[1] <= 256 else np.uint16)
        maps = None
        if keep:
            maps = region_scores_to_pixels(probs.cpu(), region_map).numpy().astype(np.float16)
        return labels, maps


def build_segmenter(
    classes: list[str] | str | None = None,
    *,
    memory_path: str | os.PathLike | None = None,
    model: str | None = None,
    pretrained: str | None = None,
    checkpoint: str | os.PathLike | None = None,
    variant: str | None = None,
    device: str | None = "auto",
    options: SegmentOptions | None = None,
    backbone: ClipBackbone | None = None,
) -> Segmenter:
    """Build everything a run needs, once: backbone, memory (if it exists), region proposer.

    Arguments left as None come from the environment (RNS_MODEL, RNS_PRETRAINED, RNS_CHECKPOINT,
    RNS_MEMORY) or the defaults. The memory is opened read-only in spirit: a missing memory means
    zero-shot, it is never created by segmenting.
    """
    options = options or SegmentOptions()
    # Text features take seconds per class on a CPU (80 templates each): keep them on disk across runs.
    backbone = backbone or build_backbone(model, pretrained, checkpoint, variant, device,
                                          text_cache_dir=cache_dir() / "text")  # fmt: skip
    memory = None if options.zero_shot else open_memory_if_present(memory_path)
    proposer = None
    if options.regions != "none":
        from rns.regions import build_region_proposer

        proposer = build_region_proposer(options.regions, sam_checkpoint=options.sam_checkpoint,
                                         device=str(backbone.device))  # fmt: skip
    return Segmenter(backbone, classes, memory=memory, options=options, region_proposer=proposer)


def open_memory_if_present(memory_path: str | os.PathLike | None) -> SupportMemory | None:
    """The support memory at the resolved path, or None when there is none yet."""
    location = default_memory_path(memory_path)
    local = Path(location) if isinstance(location, Path) else None
    if local is not None and local.exists() and not local.is_dir():
        # A file (RNS_MEMORY or --memory naming one): open() refuses it in one line, as add-support does.
        return SupportMemory.open(location, create=False)
    occupied = local is not None and local.exists() and any(local.iterdir())
    if not SupportMemory.exists(location) and not occupied:
        return None  # nothing there yet; something else there is refused by open() below
    return SupportMemory.open(location, create=False)


def _as_pil(image: Image.Image | np.ndarray | str | os.PathLike) -> Image.Image:
    if isinstance(image, Image.Image):
        return image.convert("RGB") if image.mode != "RGB" else image
    if isinstance(image, np.ndarray):
        array = image
        if array.dtype != np.uint8:
            raise InputError(f"image array has dtype {array.dtype}; give uint8 RGB [H, W, 3] or grey [H, W]")
        if array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4)):
            return Image.fromarray(array).convert("RGB")
        raise InputError(f"image array has shape {array.shape}; give RGB [H, W, 3] or grey [H, W]")
    return load_image(image)
