"""rns computes what the official code computes in the paper's partial-support settings, stage by stage.

Fixtures: `../shared/parity/{partial-visual,partial-text,no-text}` (the official code's outputs on the same
images and weights as the full fixture, one config change each; the README there states each rule).
Every test feeds rns the fixture's own inputs for its stage, from the features onwards, so no backbone is
built here; the end-to-end label maps of each setting are checked in `test_reference_parity.py`, which
holds the backbone and the memory. The full setting's stage tests are there too.
"""

from __future__ import annotations

import pytest
import reference_stages as stages

REASON = stages.missing_reason()
pytestmark = [
    pytest.mark.skipif(REASON is not None, reason=REASON or ""),
    # small problems: one torch thread avoids hand-offs that dominate on a busy shared CPU
    pytest.mark.usefixtures("one_torch_thread"),
]

SETTINGS = [s for s in stages.SETTINGS if s != "full"]
FIXTURES = {s: stages.Fixture(s) for s in SETTINGS} if REASON is None else {}
CASES = [(s, name) for s, fixture in FIXTURES.items() for name in fixture.test_names]
IDS = [f"{s}-{name}" for s, name in CASES]


def test_each_setting_is_the_one_it_names() -> None:
    """Guards the fixtures' meaning: 5 classes without examples / without a name / no text at all."""
    assert len(FIXTURES["partial-visual"].without_examples) == 5
    assert FIXTURES["partial-visual"].without_text == []
    assert len(FIXTURES["partial-text"].without_text) == 5
    assert FIXTURES["partial-text"].without_examples == []
    assert FIXTURES["no-text"].config.use_text is False
    assert FIXTURES["no-text"].without_text == [] and FIXTURES["no-text"].without_examples == []


def test_neutral_text_prior_is_the_reference_s() -> None:
    assert stages.neutral_prior_stage(FIXTURES["partial-text"]) >= 0.999999


@pytest.mark.parametrize("setting,name", CASES, ids=IDS)
def test_stage_relevance_zero_shot_and_retrieval(setting: str, name: str) -> None:
    result = stages.per_image_stage(FIXTURES[setting], name)
    assert result["relevance_max_diff"] < 1e-6
    assert result["zero_shot_agree"] == 1.0
    assert result["rows_equal"], result


@pytest.mark.parametrize("setting,name", CASES, ids=IDS)
def test_stage_training_set(setting: str, name: str) -> None:
    """Rows, targets (soft for pseudo anchors), kinds and weights equal to the reference's."""
    result = stages.training_set_stage(FIXTURES[setting], name)
    assert result["samples"] == result["reference_samples"], result
    assert result["features_max_diff"] < 1e-6
    assert result["targets_max_diff"] < 1e-4  # softmax(100 x cos) of float32 anchors
    assert result["labels_equal"] and result["kinds_equal"]
    assert result["weights_max_rel_diff"] < 1e-5, result


@pytest.mark.parametrize("setting,name", CASES, ids=IDS)
def test_stage_head_initial_weights(setting: str, name: str) -> None:
    assert stages.init_stage(FIXTURES[setting], name)["equal"]


@pytest.mark.parametrize("setting,name", CASES, ids=IDS)
def test_stage_head_fit(setting: str, name: str) -> None:
    """From the reference's initial weights and training set (KL term included): the same head."""
    result = stages.head_stage(FIXTURES[setting], name)
    assert result["weight_cos"] >= 0.999
    assert result["patch_agree"] >= 0.995, result
