"""Known answers for `rns.evaluate.evaluation`: a confusion matrix, its IoU, mean IoU and accuracy by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rns.evaluate.evaluation import IGNORE_INDEX, ConfusionMatrix

TRUTH = np.array([[0, 0, 1], [1, 2, IGNORE_INDEX]])
PREDICTION = np.array([[0, 1, 1], [1, 2, 0]])
# (truth, prediction) of the 5 counted pixels: (0,0) (0,1) (1,1) (1,1) (2,2); the ignored pixel counts for
# nothing even though it is predicted as 0.
MATRIX = [[1, 1, 0], [0, 2, 0], [0, 0, 1]]


def test_confusion_matrix_by_hand():
    confusion = ConfusionMatrix(3)
    confusion.update(TRUTH, PREDICTION)
    assert confusion.matrix.tolist() == MATRIX


def test_iou_miou_and_accuracy_by_hand():
    confusion = ConfusionMatrix(3)
    confusion.update(TRUTH, PREDICTION)
    scores = confusion.scores(["road", "car", "sky"])
    # IoU = tp / (row sum + column sum - tp): road 1 / (2 + 1 - 1), car 2 / (2 + 3 - 2), sky 1 / 1
    assert scores.iou == pytest.approx({"road": 1 / 2, "car": 2 / 3, "sky": 1.0})
    assert scores.miou == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)
    assert scores.pixel_accuracy == pytest.approx(4 / 5)
    assert scores.as_percentages() == {
        "miou": 72.22,
        "pixel_accuracy": 80.0,
        "iou": {"road": 50.0, "car": 66.67, "sky": 100.0},
    }


def test_a_class_absent_everywhere_has_no_iou_and_leaves_the_mean_alone():
    confusion = ConfusionMatrix(4)
    confusion.update(TRUTH, PREDICTION)
    scores = confusion.scores()
    assert math.isnan(scores.iou["3"])
    assert scores.miou == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)
    assert scores.as_percentages()["iou"]["3"] is None


def test_images_accumulate():
    confusion = ConfusionMatrix(3)
    confusion.update(TRUTH, PREDICTION)
    confusion.update(np.array([[2]]), np.array([[0]]))  # one more sky pixel, predicted as road
    assert confusion.matrix.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    scores = confusion.scores()
    # road: 1 / (2 + 2 - 1); sky: 1 / (2 + 1 - 1)
    assert scores.iou == pytest.approx({"0": 1 / 3, "1": 2 / 3, "2": 1 / 2})
    assert scores.pixel_accuracy == pytest.approx(4 / 6)


def test_bad_inputs_raise():
    confusion = ConfusionMatrix(3)
    with pytest.raises(ValueError, match="differ in size"):
        confusion.update(TRUTH, PREDICTION[:, :2])
    with pytest.raises(ValueError, match="prediction holds class ids"):
        confusion.update(TRUTH, np.full_like(TRUTH, 3))
    with pytest.raises(ValueError, match="ground truth holds class ids"):
        confusion.update(np.full_like(TRUTH, 7), PREDICTION)
