"""rns against the official Retrieve-and-Segment code's outputs (`../shared/parity`), one stage at a time.

Each function feeds rns the fixture's own inputs for one stage and returns what it measured, so that a
failing stage is told apart from an upstream one. `tests/test_reference_parity.py` asserts on these
figures and `benchmarks/parity.py` prints them as a table. The fixture's README states every rule.

Four settings (`SETTINGS`): the paper's full support, and its partial-support experiments, each a folder of
`../shared/parity` on the same images and weights: classes without examples (`partial-visual`), classes
without a name (`partial-text`), no text at all (`no-text`). `Fixture(setting)` loads one of them.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from shared_data import CAMVID, PARITY, SHARED  # noqa: F401  (RNS_SHARED, else ../shared)

from rns.adapt import AdaptConfig, ArraySource, ClassText, SupportSet, nearest_rows
from rns.adapt.anchors import neutral_text_prior
from rns.adapt.head import SAMPLE_KINDS, HeadProblem, LinearHead
from rns.adapt.method import plan_head
from rns.adapt.solvers import fit_head
from rns.adapt.zero_shot import zero_shot_logits

TERM_MULTIPLIERS = {"retrieved": 1.0, "anchor": 1.5, "pseudo": 0.2}
SETTINGS = ("full", "partial-visual", "partial-text", "no-text")


def missing_reason() -> str | None:
    """Why the parity checks cannot run here, or None when the fixture and CamVid are both present."""
    if not (PARITY / "index.json").is_file():
        return f"reference parity fixture not found at {PARITY} (RNS_SHARED=DIR: the folder with parity/)"
    if not (CAMVID / "test" / "images").is_dir():
        return f"CamVid not found at {CAMVID} (RNS_SHARED=DIR sets the folder holding data/camvid)"
    return None


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two `[..., d]` arrays."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return (a * b).sum(-1) / np.maximum(np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1), 1e-30)


class Fixture:
    """The reference's outputs in one setting, from `../shared/parity` (`full`) or its setting folder.

    A setting folder holds what differs from the full fixture (memory, per-image stages, label maps); the
    test images' dense features and shapes are the full fixture's, merged in by `test`. Loaded arrays are
    kept, so the tests and the benchmark read each file once.
    """

    def __init__(self, setting: str = "full", root: Path = PARITY) -> None:
        if setting not in SETTINGS:
            raise ValueError(f"unknown parity setting {setting!r}: one of {', '.join(SETTINGS)}")
        self.setting = setting
        self.full_root = root
        self.root = root if setting == "full" else root / setting
        self.full_index = json.loads((root / "index.json").read_text())
        self.index = json.loads((self.root / "index.json").read_text())
        self.classes: list[str] = list(self.index["classes"])
        self.memory = dict(np.load(self.root / "memory.npz"))
        self._tests: dict[str, dict[str, np.ndarray]] = {}

    @property
    def support_names(self) -> list[str]:
        return [item["name"] for item in self.full_index["support_images"]]

    @property
    def test_names(self) -> list[str]:
        return [item["name"] for item in self.index["test_images"]]

    @property
    def without_examples(self) -> list[int]:
        """Classes the memory holds no example of (the reference's `drop_classes`)."""
        return sorted(int(c) for c in self.memory.get("classes_without_examples", ()))

    @property
    def without_text(self) -> list[int]:
        """Classes without a name (their text row in the fixture is the neutral prior)."""
        return sorted(int(c) for c in self.memory.get("classes_without_text", ()))

    @property
    def config(self) -> AdaptConfig:
        """rns's settings for this fixture: the defaults, with text off where the reference ran without."""
        return AdaptConfig(use_text=bool(self.index.get("use_text", True)))

    def support(self, name: str) -> dict[str, np.ndarray]:
        return dict(np.load(self.full_root / f"support_{name}.npz"))

    def test(self, name: str) -> dict[str, np.ndarray]:
        if name not in self._tests:
            data = dict(np.load(self.full_root / f"test_{name}.npz"))
            if self.setting != "full":
                data.update(np.load(self.root / f"test_{name}.npz"))  # features etc. stay the full's
            self._tests[name] = data
        return self._tests[name]

    def labels(self, name: str, seed: int = 0) -> np.ndarray:
        suffix = "" if seed == 0 else f"_seed{seed}"
        return np.asarray(Image.open(self.root / f"test_{name}_labels{suffix}.png"))

    @cached_property
    def text(self) -> ClassText:
        """The class texts as rns holds them: None for a class without a name."""
        nameless = set(self.without_text)
        rows = self.memory["text_embeddings"]
        return ClassText.from_list(
            [None if c in nameless else torch.from_numpy(v) for c, v in enumerate(rows)], self.classes
        )

    @cached_property
    def finite_rows(self) -> np.ndarray:
        """Indices of the support rows that hold a prototype (absent classes are rows of +inf)."""
        return np.nonzero(np.isfinite(self.memory["support_rows"]).all(axis=1))[0]

    def seed_agreement(self, name: str) -> float:
        """Pixel agreement of the reference with itself over two head seeds (its noise floor)."""
        return float((self.labels(name, 0) == self.labels(name, 1)).mean())


def checkpoint_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def make_reference_checkpoint(path: Path) -> Path:
    """The fixture's weights by its recipe: `torch.manual_seed(0); open_clip.create_model('ViT-B-16')`."""
    import open_clip

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = open_clip.create_model("ViT-B-16")
    torch.save(model.state_dict(), path)
    return path


def image_path(name: str, split: str) -> Path:
    return CAMVID / split / "images" / f"{name}.jpg"


def mask_path(name: str, split: str) -> Path:
    return CAMVID / split / "masks" / f"{name}.png"


# ----------------------------------------------------------------------------------------- stages
def dense_feature_cache(backbone):
    """`name -> dense features` of a test image, each computed once and shared by every setting."""
    from rns.io.imageio import load_image

    return functools.cache(lambda name: backbone.dense_features(load_image(image_path(name, "test"))))


def dense_stage(backbone, fixture: Fixture, name: str) -> dict[str, object]:
    """Grid and dense test-time features from the photo itself."""
    reference = fixture.test(name)
    image = Image.open(image_path(name, "test")).convert("RGB")
    geometry = backbone.geometry(image.width, image.height)
    features = backbone.dense_features(image).cpu().numpy()
    same_grid = features.shape == reference["features"].shape
    cos = cosine(features, reference["features"]) if same_grid else np.zeros(1)
    return {
        "grid": tuple(features.shape[:2]),
        "reference_grid": tuple(reference["features"].shape[:2]),
        "resized": tuple(geometry.resized),
        "reference_resized": tuple(reference["resized_shape"]),
        "same_grid": same_grid,
        "cos_min": float(cos.min()),
        "cos_mean": float(cos.mean()),
    }


def support_stage(backbone, fixture: Fixture, name: str) -> dict[str, object]:
    """Per-class prototypes of one support image (two window passes, count pooling) from image and mask."""
    from rns.io.imageio import load_mask
    from rns.teach.prototypes import extract_prototypes

    position = fixture.support_names.index(name)
    image = Image.open(image_path(name, "train")).convert("RGB")
    labels = load_mask(mask_path(name, "train"))
    geometry = backbone.geometry(image.width, image.height)
    with torch.inference_mode():
        features = backbone.support_features(image)
        vectors, present = extract_prototypes(
            features, labels, range(len(fixture.classes)), geometry, "count"
        )
    rows = fixture.memory["support_rows"][
        position * len(fixture.classes) : (position + 1) * len(fixture.classes)
    ]
    expected = [c for c in range(len(fixture.classes)) if np.isfinite(rows[c]).all()]
    cos = cosine(vectors.cpu().numpy(), rows[present]) if present == expected else np.zeros(1)
    return {
        "classes": present,
        "reference_classes": expected,
        "cos_min": float(cos.min()),
        "cos_mean": float(cos.mean()),
    }


def fixture_support_set(fixture: Fixture, rows: np.ndarray) -> SupportSet:
    """The SupportSet of the given retrieved fixture rows, with the fixture's class-level prototypes."""
    num_classes = len(fixture.classes)
    support_rows = fixture.memory["support_rows"]
    has_visual = np.isfinite(support_rows).all(axis=1).reshape(-1, num_classes).any(axis=0)
    return SupportSet(
        vectors=torch.from_numpy(support_rows[rows]).float(),
        labels=torch.from_numpy(rows % num_classes).long(),
        class_vectors=torch.from_numpy(np.nan_to_num(fixture.memory["class_prototypes"])).float(),
        has_visual=torch.from_numpy(has_visual),
    )


def per_image_stage(fixture: Fixture, name: str) -> dict[str, object]:
    """Relevance, zero-shot labels and retrieved rows, from the fixture's features and memory.

    Relevance is the one rns's plan computes for the head; the zero-shot pass scores a nameless class with
    rns's neutral prior, as the reference scores it with the prior it stores in that class's text row.
    """
    reference = fixture.test(name)
    queries = torch.from_numpy(reference["features"]).reshape(-1, reference["features"].shape[-1])
    support = fixture_support_set(fixture, reference["retrieved_rows"].astype(np.int64))
    relevance = plan_head(queries, fixture.text, support, fixture.config).relevance.numpy()
    scoring = fixture.text.with_prior(neutral_text_prior(fixture.text, "cpu"))
    zero_shot = zero_shot_logits(queries, scoring).argmax(dim=1).numpy()
    finite = fixture.finite_rows
    source = ArraySource(fixture.memory["support_rows"][finite], finite % len(fixture.classes))
    rows = finite[nearest_rows(queries, source, AdaptConfig().k)]
    return {
        "relevance_max_diff": float(np.abs(relevance - reference["relevance"]).max()),
        "zero_shot_agree": float((zero_shot == reference["zero_shot_patch_labels"].reshape(-1)).mean()),
        "rows_equal": bool(np.array_equal(np.sort(rows), reference["retrieved_rows"])),
        "num_rows": int(len(rows)),
        "reference_num_rows": int(len(reference["retrieved_rows"])),
    }


def neutral_prior_stage(fixture: Fixture) -> float | None:
    """Lowest cosine of rns's neutral text prior to the reference's text row of each nameless class."""
    if not fixture.without_text:
        return None
    prior = neutral_text_prior(fixture.text, "cpu").numpy()
    return float(cosine(fixture.memory["text_embeddings"][fixture.without_text], prior).min())


def reference_problem(fixture: Fixture, name: str) -> HeadProblem:
    """The head's training set exactly as the reference built it, in rns's form (weights include 1/M)."""
    reference = fixture.test(name)
    kinds = torch.from_numpy(reference["train_kind"].astype(np.int64))
    multipliers = torch.tensor([TERM_MULTIPLIERS[kind] for kind in SAMPLE_KINDS])[kinds]
    weights = torch.from_numpy(reference["train_weights"]) * multipliers / len(kinds)
    if "train_targets" in reference:  # the settings' fixtures: soft rows for pseudo anchors
        targets = torch.from_numpy(reference["train_targets"]).float()
    else:
        targets = F.one_hot(torch.from_numpy(reference["train_labels"]), len(fixture.classes)).float()
    return HeadProblem(torch.from_numpy(reference["train_features"]), targets, weights.float(), kinds)


def training_set_stage(fixture: Fixture, name: str) -> dict[str, object]:
    """The head's training set rns builds from the reference's features, retrieved rows and memory."""
    reference = fixture.test(name)
    queries = torch.from_numpy(reference["features"]).reshape(-1, reference["features"].shape[-1])
    support = fixture_support_set(fixture, reference["retrieved_rows"].astype(np.int64))
    problem = plan_head(queries, fixture.text, support, fixture.config).problem
    expected = reference_problem(fixture, name)
    same_size = problem is not None and len(problem) == len(expected)
    if not same_size:
        return {
            "samples": 0 if problem is None else len(problem),
            "reference_samples": len(expected),
            "features_max_diff": float("inf"),
            "targets_max_diff": float("inf"),
            "labels_equal": False,
            "kinds_equal": False,
            "weights_max_rel_diff": float("inf"),
        }
    weight_diff = (problem.weights - expected.weights).abs() / expected.weights.abs().clamp_min(1e-30)
    return {
        "samples": len(problem),
        "reference_samples": len(expected),
        "features_max_diff": float((problem.features - expected.features).abs().max()),
        "targets_max_diff": float((problem.targets - expected.targets).abs().max()),
        "labels_equal": bool(torch.equal(problem.targets.argmax(1), expected.targets.argmax(1))),
        "kinds_equal": bool(torch.equal(problem.kinds, expected.kinds)),
        "weights_max_rel_diff": float(weight_diff.max()),
    }


def head_stage(fixture: Fixture, name: str, solver: str = "adamw") -> dict[str, object]:
    """From the reference's initial weights and training set: trained weights and patch labels."""
    reference = fixture.test(name)
    problem = reference_problem(fixture, name)
    start = LinearHead(torch.from_numpy(reference["head_init_weight"]), torch.zeros(len(fixture.classes)))
    head = fit_head(problem, AdaptConfig(solver=solver), start)
    queries = torch.from_numpy(reference["features"]).reshape(-1, reference["features"].shape[-1])
    labels = head(queries).argmax(dim=1).numpy()
    cos = cosine(head.weight.numpy().ravel(), reference["head_weight"].ravel())
    return {
        "weight_cos": float(cos),
        "patch_agree": float((labels == reference["patch_labels"].ravel()).mean()),
    }


def init_stage(fixture: Fixture, name: str) -> dict[str, object]:
    """rns's seeded initial head against the reference's draw for this image (seed = 0 * 1000 + index)."""
    from rns.adapt.head import initial_head

    index = fixture.test_names.index(name)
    reference = fixture.test(name)["head_init_weight"]
    head = initial_head(len(fixture.classes), reference.shape[1], seed=index, device="cpu")
    return {"equal": bool(np.array_equal(head.weight.numpy(), reference))}


def build_reference_memory(backbone, fixture: Fixture, path: Path):
    """The fixture's supports taught through rns's own add-support path into a new memory at `path`."""
    from rns.teach.mask_conventions import LabelMapping
    from rns.teach.support import add_supports
    from support_memory import SupportMemory

    memory = SupportMemory.open(path)
    pairs = [(image_path(n, "train"), mask_path(n, "train")) for n in fixture.support_names]
    add_supports(backbone, memory, pairs, LabelMapping(values=dict(enumerate(fixture.classes))))
    return memory


def setting_memory(full_memory, fixture: Fixture, path: Path):
    """The full fixture's memory as a user of this setting would hold it, in a copy at `path`.

    Classes without examples are removed (`SupportMemory.remove_class`: what masks that never label them
    give); classes without a name are re-stored with no text, as `rns add-support --no-text` stores them
    (the same rows under the same content key: only the class's text changes). In `no-text` every class is
    nameless, so rns meets a memory with no text at all, and the fixture's classes list has no background.
    """
    import shutil

    from support_memory import SupportMemory

    shutil.copytree(full_memory.path, path)
    memory = SupportMemory.open(path)
    for c in fixture.without_examples:
        memory.remove_class(fixture.classes[c])
    nameless = [fixture.classes[c] for c in fixture.without_text]
    if fixture.setting == "no-text":
        nameless = list(fixture.classes)
    for source in memory.sources():
        names = [n for n in source.class_names if n in nameless]
        if names:
            vectors, _ = memory.rows(memory.source_rows(source.source_id))
            memory.put_source(
                source.source_id, vectors, list(source.class_names), fingerprint=memory.fingerprint,
                content_key=source.content_key, class_texts=dict.fromkeys(names),
            )
    return memory


def reference_segmenter(backbone, fixture: Fixture, memory, seed: int, solver: str = "adamw"):
    """A Segmenter in the paper's setting (the fixture's classes, no background), head seeded with `seed`."""
    from rns.segment.pipeline import Segmenter, SegmentOptions

    options = SegmentOptions(background=False, adapt=AdaptConfig(seed=seed, solver=solver))
    return Segmenter(backbone, fixture.classes, memory=memory, options=options)


@dataclass
class EndToEnd:
    """Final label maps of rns against the reference's, for one test image."""

    name: str
    agree: float
    seed_agree: float


def end_to_end_stage(segmenter_for_seed, fixture: Fixture, name: str, features=None) -> EndToEnd:
    """rns's final label map (head seeded as the reference's was) against the reference's, pixel by pixel.

    `features`: the image's dense features from the same backbone, when a caller computed them once for
    several settings; otherwise the segmenter computes them from the photo.
    """
    from rns.io.imageio import load_image

    index = fixture.test_names.index(name)
    segmenter = segmenter_for_seed(index)
    if features is None:
        labels = segmenter.segment(image_path(name, "test")).labels
    else:
        labels = segmenter.segment_features(load_image(image_path(name, "test")), features).labels
    return EndToEnd(name, float((labels == fixture.labels(name, 0)).mean()), fixture.seed_agreement(name))
