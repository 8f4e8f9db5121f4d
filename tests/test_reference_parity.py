"""rns computes what the official Retrieve-and-Segment code computes, stage by stage.

Fixture: `../shared/parity` (the official code's outputs on CamVid with a seeded random ViT-B-16; its
README states each rule). Every stage test feeds rns the fixture's own inputs for that stage, so a failure
names the stage at fault. The weights are built by the fixture's recipe and loaded through
`--checkpoint`, and their sha256 is checked against the fixture's, so both sides run identical weights.
Random weights say nothing about accuracy; they make every stage's numbers comparable.
"""

from __future__ import annotations

import numpy as np
import pytest
import reference_stages as stages

REASON = stages.missing_reason()
pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")

FIXTURE = stages.Fixture() if REASON is None else None
TEST_NAMES = FIXTURE.test_names if FIXTURE else []
SUPPORT_NAMES = FIXTURE.support_names if FIXTURE else []


@pytest.fixture(scope="module")
def reference_checkpoint(tmp_path_factory):
    # torch.save writes the file's stem into the archive, so the name is part of the fixture's sha256
    path = stages.make_reference_checkpoint(tmp_path_factory.mktemp("weights") / "vitb16_seed0.pt")
    assert stages.checkpoint_sha256(path) == FIXTURE.index["checkpoint"]["sha256"], (
        "the seeded ViT-B-16 differs from the fixture's: torch or open_clip changed the random init"
    )
    return path


@pytest.fixture(scope="module")
def backbone(reference_checkpoint):
    from rns.backbone import build_backbone

    return build_backbone("ViT-B-16", checkpoint=reference_checkpoint, variant="maskclip", device="cpu")


@pytest.mark.slow
@pytest.mark.parametrize("name", TEST_NAMES[:3])
def test_stage_dense_features(backbone, name):
    result = stages.dense_stage(backbone, FIXTURE, name)
    assert result["resized"] == result["reference_resized"]
    assert result["grid"] == result["reference_grid"]
    assert result["cos_min"] >= 0.999, result


@pytest.mark.slow
@pytest.mark.parametrize("name", SUPPORT_NAMES)
def test_stage_support_prototypes(backbone, name):
    result = stages.support_stage(backbone, FIXTURE, name)
    assert result["classes"] == result["reference_classes"]
    assert result["cos_min"] >= 0.999, result


@pytest.mark.parametrize("name", TEST_NAMES)
def test_stage_relevance_zero_shot_and_retrieval(name):
    result = stages.per_image_stage(FIXTURE, name)
    assert result["relevance_max_diff"] < 1e-6
    assert result["zero_shot_agree"] == 1.0
    assert result["rows_equal"], result


@pytest.mark.parametrize("name", TEST_NAMES)
def test_stage_training_set(name):
    result = stages.training_set_stage(FIXTURE, name)
    assert result["samples"] == result["reference_samples"]
    assert result["features_max_diff"] < 1e-6
    assert result["labels_equal"] and result["kinds_equal"]
    assert result["weights_max_rel_diff"] < 1e-5, result


@pytest.mark.parametrize("name", TEST_NAMES)
def test_stage_head_initial_weights(name):
    assert stages.init_stage(FIXTURE, name)["equal"]


@pytest.mark.parametrize("name", TEST_NAMES)
def test_stage_head_fit(name):
    result = stages.head_stage(FIXTURE, name)
    assert result["weight_cos"] >= 0.999
    assert result["patch_agree"] >= 0.995, result


@pytest.fixture(scope="module")
def reference_memory(backbone, tmp_path_factory):
    """The three fixture supports taught through rns's own add-support path."""
    return stages.build_reference_memory(backbone, FIXTURE, tmp_path_factory.mktemp("memory") / "memory.zarr")


@pytest.mark.slow
def test_memory_rows_match_the_reference_prototypes(reference_memory):
    """What add-support stores (float16 rows) is the reference's per-image prototype of each class."""
    num_classes = len(FIXTURE.classes)
    names = [info.name for info in sorted(reference_memory.classes(), key=lambda info: info.id)]
    rows = reference_memory.live_rows()
    vectors, class_ids = reference_memory.rows(rows)
    reference = FIXTURE.memory["support_rows"]
    expected = reference[np.isfinite(reference).all(axis=1)]
    assert len(rows) == len(expected)
    for vector, class_id in zip(vectors, class_ids, strict=True):
        c = FIXTURE.classes.index(names[class_id])
        candidates = reference[c::num_classes]
        candidates = candidates[np.isfinite(candidates).all(axis=1)]  # images without class c hold +inf
        assert stages.cosine(candidates, vector).max() >= 0.999


@pytest.mark.slow
@pytest.mark.parametrize("name", TEST_NAMES)
def test_end_to_end_label_maps(backbone, reference_memory, name):
    """Final label maps agree with the reference at least as well as the reference agrees with itself over
    two head seeds, minus one point (rns's head is seeded as the fixture seeded the reference's)."""
    from rns.adapt import AdaptConfig
    from rns.segment.pipeline import Segmenter, SegmentOptions

    def segmenter_for_seed(seed: int) -> Segmenter:
        options = SegmentOptions(background=False, adapt=AdaptConfig(seed=seed))
        return Segmenter(backbone, FIXTURE.classes, memory=reference_memory, options=options)

    result = stages.end_to_end_stage(segmenter_for_seed, FIXTURE, name)
    assert result.agree >= result.seed_agree - 0.01, result


# ------------------------------------------------------------------ the partial-support settings, end to end
SETTING_FIXTURES = {s: stages.Fixture(s) for s in stages.SETTINGS if s != "full"} if REASON is None else {}
SETTING_CASES = [(s, name) for s, fixture in SETTING_FIXTURES.items() for name in fixture.test_names]


@pytest.fixture(scope="module")
def dense_features(backbone):
    """Each test image's dense features, computed once for all settings (the same backbone and photo)."""
    return stages.dense_feature_cache(backbone)


@pytest.fixture(scope="module")
def setting_memories(reference_memory, tmp_path_factory):
    """Per setting, the memory a user of that setting holds (see `stages.setting_memory`), built once."""
    cache = {}

    def memory_of(setting: str):
        if setting not in cache:
            path = tmp_path_factory.mktemp("memory") / f"{setting}.zarr"
            cache[setting] = stages.setting_memory(reference_memory, SETTING_FIXTURES[setting], path)
        return cache[setting]

    return memory_of


@pytest.mark.slow
@pytest.mark.parametrize("setting,name", SETTING_CASES, ids=[f"{s}-{n}" for s, n in SETTING_CASES])
def test_end_to_end_label_maps_per_setting(backbone, setting_memories, dense_features, setting, name):
    """Each setting reached through rns's ordinary interface (classes no mask labels, `--no-text` classes,
    a memory without any text), with rns's default options: final label maps agree with the reference at
    least as well as the reference agrees with itself over two head seeds, minus one point."""
    fixture = SETTING_FIXTURES[setting]
    memory = setting_memories(setting)

    def segmenter_for_seed(seed: int):
        return stages.reference_segmenter(backbone, fixture, memory, seed)

    result = stages.end_to_end_stage(segmenter_for_seed, fixture, name, dense_features(name))
    assert result.agree >= result.seed_agree - 0.01, result
