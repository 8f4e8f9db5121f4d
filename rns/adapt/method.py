"""Steps 1-7 for one image: from query features, class texts and retrieved supports to class scores.

Upsampling to the image and writing files are the pipeline's; this module only scores the queries it is
given (patches or regions).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rns.adapt.anchors import AnchorSet, build_anchor_set, neutral_text_prior, pseudo_prototypes
from rns.adapt.head import HeadProblem, LinearHead, build_problem, objective
from rns.adapt.relevance import class_relevance
from rns.adapt.solvers import fit_head
from rns.adapt.types import AdaptConfig, AdaptResult, ClassText, SupportSet
from rns.adapt.zero_shot import text_similarity, zero_shot_logits
from rns.errors import InputError
from rns.timing import device_time


@dataclass(frozen=True)
class ClassRoles:
    """How each class is learned in this image.

    `visual`: class index -> visual prototype, for classes trained on fused anchors (step 4);
    `pseudo`: classes trained on pseudo anchors (step 5) because they have text but no visual support here.
    """

    visual: dict[int, torch.Tensor]
    pseudo: list[int]


def missing_class_error(name: str) -> InputError:
    """The error for a class that can never be predicted: it has neither a usable name nor examples."""
    return InputError(f"class {name!r} has no usable name and no examples: add examples of it with "
                      f"`rns add-support IMAGE MASK --class {name}`, or give it a text prompt with --text")


def class_roles(text: ClassText, support: SupportSet, config: AdaptConfig) -> ClassRoles:
    """Decide, per class, between fused visual anchors, pseudo anchors and nothing; refuse unlearnable ones.

    The reference's rule (`core/rns.py:139-192`): a class some query retrieved gets fused anchors from its
    class-level prototype (the mean of its retrieved rows stands in for a missing one); a class with
    examples in the memory that no query retrieved gets nothing in this image, named or not; a class with
    text and no examples at all gets pseudo anchors (kept only if zero-shot predicts it here); a class
    with neither is refused (the reference could only describe it by the neutral prior, the same vector
    for every nameless class). rns options: `anchors_need_retrieval=False` gives anchors to every class
    with examples; `visual_anchors_without_text=True` does so for the classes without text only (rns's
    earlier rule). `text` is what the adaptation may read: without text (the no-text setting) no class
    gets pseudo anchors.
    """
    retrieved = torch.zeros(support.num_classes, dtype=torch.bool, device=support.labels.device)
    retrieved[support.labels] = True
    visual: dict[int, torch.Tensor] = {}
    pseudo: list[int] = []
    for c in range(text.num_classes):
        has_text = text.vectors[c] is not None
        has_examples = bool(support.has_visual[c])
        if bool(retrieved[c]):
            visual[c] = support.class_vectors[c] if has_examples else torch.nn.functional.normalize(
                support.vectors[support.labels == c].mean(dim=0), dim=-1)
        elif has_examples:
            if not config.anchors_need_retrieval or (config.visual_anchors_without_text and not has_text):
                visual[c] = support.class_vectors[c]
        elif has_text:
            pseudo.append(c)
        else:
            raise missing_class_error(text.name(c))
    return ClassRoles(visual, pseudo)


def _finish(logits: torch.Tensor, config: AdaptConfig, timings: dict[str, float],
            diagnostics: dict[str, object]) -> AdaptResult:
    """Probabilities and labels, with the optional background threshold."""
    probs = torch.softmax(logits, dim=1)
    confidence, labels = probs.max(dim=1)
    if config.background_threshold is not None:
        labels = torch.where(confidence < config.background_threshold, torch.zeros_like(labels), labels)
    return AdaptResult(logits=logits, probs=probs, labels=labels, timings=timings, diagnostics=diagnostics)


def zero_shot(queries: torch.Tensor, text: ClassText, config: AdaptConfig | None = None) -> AdaptResult:
    """Step 1 alone: the zero-shot result (what `rns segment --zero-shot` gives).

    Every class needs text here: a class known only from examples cannot be found without them.
    """
    config = config or AdaptConfig()
    start = device_time(queries.device)
    for c, vectors in enumerate(text.vectors):
        if vectors is None:
            raise missing_class_error(text.name(c))
    logits = zero_shot_logits(queries.float(), text, config.temperature)
    timings = {"zero_shot": device_time(queries.device) - start}
    return _finish(logits, config, timings, {"mode": "zero-shot", "num_retrieved": 0})


def _check_inputs(queries: torch.Tensor, text: ClassText, support: SupportSet | None) -> None:
    if queries.dim() != 2 or queries.shape[0] == 0:
        raise ValueError(f"queries must be a non-empty [n, d] tensor, got {tuple(queries.shape)}")
    if text.dim is not None and text.dim != queries.shape[1]:
        raise ValueError(f"text vectors have dimension {text.dim}, queries {queries.shape[1]}")
    if support is not None and support.num_classes != text.num_classes:
        raise ValueError(f"support covers {support.num_classes} classes, text {text.num_classes}")
    if support is not None and support.class_vectors.shape[1] != queries.shape[1]:
        raise ValueError(f"support has dimension {support.class_vectors.shape[1]}, "
                         f"queries {queries.shape[1]}")


@dataclass(frozen=True)
class HeadPlan:
    """Everything steps 2-5 decide for one image: the head's training problem and how it was built.

    `problem` is None when there is nothing to train on (no retrieved row of an asked class and no pseudo
    anchor): the image is then segmented zero-shot.
    """

    problem: HeadProblem | None
    roles: ClassRoles
    relevance: torch.Tensor
    pseudo_from_image: list[int]


def is_text_free(text: ClassText, config: AdaptConfig) -> bool:
    """The no-text setting: text switched off (`use_text=False`) or no class has any."""
    return not config.use_text or text.dim is None


def plan_head(queries: torch.Tensor, text: ClassText, support: SupportSet, config: AdaptConfig) -> HeadPlan:
    """Steps 2-5: relevance, fused anchors, pseudo anchors, stacked into the head's training problem.

    Where a class has no name, the neutral text prior stands in for its text wherever text is read
    (zero-shot labels, fused anchors, pseudo targets), as in the reference (`main_eval.py:291-303`).
    In the no-text setting (`is_text_free`) the head trains on the retrieved rows alone
    (`main_eval.py:308-332`), unless `visual_anchors_without_text` adds the visual prototypes.
    """
    device, dim = queries.device, queries.shape[1]
    text_free = is_text_free(text, config)
    work_text = text.without_text() if text_free else text
    prior = None if text_free else neutral_text_prior(work_text, device)
    scoring_text = work_text.with_prior(prior)
    roles = class_roles(work_text, support, config)
    relevance = class_relevance(queries, work_text, config.relevance_temperature, config.use_relevance,
                                config.nameless_relevance)
    anchors = AnchorSet.empty(dim, device)
    if not text_free or config.visual_anchors_without_text:
        anchors = build_anchor_set(roles.visual, work_text, config.lambdas, prior, dim, device)
    pseudo = AnchorSet.empty(dim, device)
    pseudo_targets = torch.zeros(0, text.num_classes, device=device)
    protos: dict[int, torch.Tensor] = {}
    if roles.pseudo:
        zero_shot_labels = zero_shot_logits(queries, scoring_text, config.temperature).argmax(dim=1)
        protos = pseudo_prototypes(queries, zero_shot_labels, roles.pseudo, work_text)
        pseudo = build_anchor_set(protos, work_text, config.lambdas, prior, dim, device)
        soft_logits = config.temperature * text_similarity(pseudo.features, scoring_text)
        pseudo_targets = torch.softmax(soft_logits, dim=1)
    problem = None
    if support.num_rows or len(anchors) or len(pseudo):
        problem = build_problem(support.vectors, support.labels, anchors, pseudo, pseudo_targets, relevance,
                                config)
    return HeadPlan(problem, roles, relevance, sorted(protos))


def score_queries(queries: torch.Tensor, text: ClassText, support: SupportSet | None = None,
                     config: AdaptConfig | None = None) -> AdaptResult:
    """Score every query (patch or region feature, L2-normalised `[n, d]`) over the C classes of `text`.

    With no support (None or empty) the result is the zero-shot pass (step 1), unless
    `config.pseudo_only_adaptation` asks for a head fitted on pseudo anchors alone. Otherwise: relevance
    (2), fused anchors of retrieved classes (4), pseudo anchors of classes with no examples (5), head fit
    on supports + anchors (6), head applied to the queries (7). Everything runs on the queries' device.

    Diagnostics: mode, solver, relevance `[C]` (list), num_retrieved, visual_classes, pseudo_classes,
    pseudo_from_image (pseudo classes zero-shot found in this image), num_samples, loss.
    Raises `InputError` for a class with neither text nor visual support.
    """
    config = config or AdaptConfig()
    _check_inputs(queries, text, support)
    queries = queries.float()
    device = queries.device
    if support is None or support.is_empty:
        if not config.pseudo_only_adaptation:
            return zero_shot(queries, text, config)
        support = SupportSet.empty(text.num_classes, queries.shape[1], device)
    timings: dict[str, float] = {}
    start = device_time(device)
    plan = plan_head(queries, text, support.to(device), config)
    timings["prepare"] = device_time(device) - start
    if plan.problem is None:
        return zero_shot(queries, text, config)

    start = device_time(device)
    head = fit_head(plan.problem, config)
    timings["head_fit"] = device_time(device) - start

    start = device_time(device)
    logits = head(queries)
    timings["predict"] = device_time(device) - start
    diagnostics: dict[str, object] = {
        "mode": "adapted",
        "solver": config.solver,
        "relevance": plan.relevance.tolist(),
        "num_retrieved": support.num_rows,
        "visual_classes": sorted(plan.roles.visual),
        "pseudo_classes": list(plan.roles.pseudo),
        "pseudo_from_image": plan.pseudo_from_image,
        "num_samples": len(plan.problem),
        "loss": float(_loss(head, plan.problem)),
    }
    return _finish(logits, config, timings, diagnostics)


def _loss(head: LinearHead, problem: HeadProblem) -> torch.Tensor:
    with torch.no_grad():
        return objective(head, problem)
