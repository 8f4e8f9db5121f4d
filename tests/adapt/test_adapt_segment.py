"""Steps 1-7 end to end on synthetic scenes: what examples, pseudo labels and the ablations change."""

from __future__ import annotations

import pytest
import torch

from rns.adapt import AdaptConfig, SupportSet, retrieve_support, score_queries, zero_shot
from rns.adapt.synthetic import Scene, SceneSpec, make_scene, mean_iou
from rns.errors import InputError

# Tiny problems: one torch thread avoids thread hand-offs that dominate on a busy shared CPU.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def run(scene: Scene, config: AdaptConfig | None = None):
    config = config or AdaptConfig()
    support = retrieve_support(scene.queries, scene.source, scene.class_index, scene.text.num_classes, config)
    return score_queries(scene.queries, scene.text, support, config)


def class_iou(result, scene: Scene, c: int) -> float:
    predicted, truth = result.labels == c, scene.labels == c
    return int((predicted & truth).sum()) / max(int((predicted | truth).sum()), 1)


def test_examples_separate_classes_whose_names_zero_shot_confuses() -> None:
    scene = make_scene(SceneSpec(ambiguous=((2, 3),), seed=0))
    before = zero_shot(scene.queries, scene.text)
    after = run(scene)
    assert class_iou(before, scene, 3) < 0.5  # class 2's name points at class 3 too
    assert class_iou(after, scene, 2) > 0.9 and class_iou(after, scene, 3) > 0.9
    assert mean_iou(after.labels, scene.labels, 5) > mean_iou(before.labels, scene.labels, 5) + 0.15


def test_pseudo_labels_rescue_a_class_without_examples() -> None:
    scene = make_scene(SceneSpec(no_support=(3,), seed=1))
    result = run(scene)
    assert result.diagnostics["pseudo_classes"] == [3] and result.diagnostics["pseudo_from_image"] == [3]
    assert class_iou(result, scene, 3) > 0.9
    without_pseudo = run(scene, AdaptConfig(pseudo_weight=0.0))
    assert class_iou(without_pseudo, scene, 3) < 0.1  # nothing else teaches the head about class 3


def test_a_class_without_a_name_is_learned_from_its_examples_alone() -> None:
    scene = make_scene(SceneSpec(no_text=(2,), seed=2))
    result = run(scene)
    assert 2 in result.diagnostics["visual_classes"]
    assert class_iou(result, scene, 2) > 0.9


def test_a_class_with_neither_name_nor_examples_is_refused_by_name() -> None:
    scene = make_scene(SceneSpec(no_text=(2,), no_support=(2,), seed=2))
    with pytest.raises(InputError, match="'class2'.*add-support.*--text"):
        run(scene)


def test_the_same_seed_gives_the_same_result_and_the_solvers_agree() -> None:
    scene = make_scene(SceneSpec(ambiguous=((2, 3),), no_support=(4,), query_noise=1.4, seed=4))
    first, second = run(scene), run(scene)
    assert torch.equal(first.logits, second.logits)
    reference = run(scene, AdaptConfig(solver="adamw"))
    assert float((first.labels == reference.labels).float().mean()) >= 0.98
    assert abs(mean_iou(first.labels, scene.labels, 5) - mean_iou(reference.labels, scene.labels, 5)) < 0.02


# Classes 2 and 3 have each other's names half mixed in (zero-shot mIoU 0.65), plus far-away distractors.
ABLATION_SCENE = SceneSpec(ambiguous=((2, 3), (3, 2)), distractors=20, seed=5)


@pytest.mark.parametrize("config", [
    AdaptConfig(use_text=False),
    AdaptConfig(use_relevance=False),
    AdaptConfig(lambdas=(0.5,)),
    AdaptConfig(use_retrieval=False),
    AdaptConfig(anchors_need_retrieval=False),
], ids=["no-text", "no-relevance", "one-lambda", "all-supports", "anchors-for-all"])
def test_ablations_run_and_still_beat_zero_shot_on_ambiguous_names(config: AdaptConfig) -> None:
    scene = make_scene(ABLATION_SCENE)
    result = run(scene, config)
    assert result.probs.shape == (scene.queries.shape[0], 5)
    assert torch.allclose(result.probs.sum(dim=1), torch.ones(scene.queries.shape[0]))
    zero = zero_shot(scene.queries, scene.text)
    assert mean_iou(result.labels, scene.labels, 5) > mean_iou(zero.labels, scene.labels, 5) + 0.2


def test_ablation_switches_change_what_the_head_is_trained_on() -> None:
    scene = make_scene(ABLATION_SCENE)
    default = run(scene)
    assert run(scene, AdaptConfig(use_retrieval=False)).diagnostics["num_retrieved"] > \
        default.diagnostics["num_retrieved"]
    assert run(scene, AdaptConfig(lambdas=(0.5,))).diagnostics["num_samples"] < \
        default.diagnostics["num_samples"]
    assert len(set(run(scene, AdaptConfig(use_relevance=False)).diagnostics["relevance"])) == 1
    no_text = run(scene, AdaptConfig(use_text=False))
    assert no_text.diagnostics["pseudo_classes"] == [] and len(set(no_text.diagnostics["relevance"])) == 1


def test_without_text_a_class_without_examples_cannot_be_learned() -> None:
    scene = make_scene(SceneSpec(no_support=(3,), seed=1))
    with pytest.raises(InputError, match="'class3'"):
        run(scene, AdaptConfig(use_text=False))


def test_no_support_is_the_zero_shot_result_unless_pseudo_adaptation_is_asked() -> None:
    scene = make_scene(SceneSpec(seed=6))
    plain = zero_shot(scene.queries, scene.text)
    for support in (None, SupportSet.empty(5, 64)):
        result = score_queries(scene.queries, scene.text, support)
        assert torch.equal(result.logits, plain.logits) and result.diagnostics["mode"] == "zero-shot"
    adapted = score_queries(scene.queries, scene.text, None, AdaptConfig(pseudo_only_adaptation=True))
    assert adapted.diagnostics["mode"] == "adapted"
    assert adapted.diagnostics["pseudo_classes"] == [0, 1, 2, 3, 4]
    assert float((adapted.labels == plain.labels).float().mean()) > 0.9


def test_diagnostics_and_timings_describe_the_run() -> None:
    scene = make_scene(SceneSpec(no_support=(4,), seed=7))
    result = run(scene)
    info = result.diagnostics
    assert info["num_retrieved"] > 0 and info["solver"] == "adamw"
    assert info["visual_classes"] == [0, 1, 2, 3] and info["pseudo_classes"] == [4]
    assert abs(sum(info["relevance"]) - 1.0) < 1e-5
    assert set(result.timings) == {"prepare", "head_fit", "predict"}


def test_mismatched_dimensions_are_refused() -> None:
    scene = make_scene(SceneSpec(seed=8))
    with pytest.raises(ValueError, match="dimension"):
        score_queries(scene.queries[:, :32], scene.text, None)
