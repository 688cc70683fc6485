"""Decision thresholds: best F1 per tag, shrunk toward a shared one when a tag has few positives."""

import numpy as np
import pytest

from autotag.training.thresholds import PRIOR_POSITIVES, best_f1_cut, tune_thresholds


def test_the_best_f1_cut_lies_midway_between_distinct_scores() -> None:
    p = np.array([0.9, 0.8, 0.4, 0.1])
    assert best_f1_cut(p, np.array([1, 1, 0, 0])) == (pytest.approx(0.6), 1.0)
    cut, f1 = best_f1_cut(np.array([0.5, 0.5, 0.2]), np.array([1, 0, 0]))
    assert cut == pytest.approx(0.35) and f1 == pytest.approx(2 / 3)  # never between two equal scores


def test_a_tag_with_few_positives_leans_on_the_shared_threshold_and_one_with_many_keeps_its_own() -> None:
    rng = np.random.default_rng(0)
    clips = 400
    many = rng.random(clips) < 0.5  # 200 positives
    few = np.zeros(clips, bool)
    few[:2] = True  # 2 positives, scored low: their own best F1 cut sits near 0.02
    probs = np.stack([np.where(many, rng.uniform(0.6, 1, clips), rng.uniform(0, 0.4, clips)), rng.random(clips)], 1)
    probs[:2, 1] = [0.03, 0.02]
    probs[2:, 1] *= 0.01  # every negative lower still
    tuned = tune_thresholds(probs, np.stack([many, few], 1).astype(float), ["many", "few"])
    own_few, _ = best_f1_cut(probs[:, 1], few)
    shared = tuned["shared"]
    assert own_few < 0.02 and tuned["positives"] == {"many": int(many.sum()), "few": 2}
    assert tuned["thresholds"]["few"] == pytest.approx((2 * own_few + PRIOR_POSITIVES * shared) / (2 + PRIOR_POSITIVES))
    own_many, _ = best_f1_cut(probs[:, 0], many)
    assert abs(tuned["thresholds"]["many"] - own_many) < 0.05 * abs(shared - own_many) + 1e-9
    assert 0.4 <= own_many <= 0.6


def test_validation_precision_and_recall_are_what_the_thresholds_promise() -> None:
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.6], [0.1, 0.2]])
    targets = np.array([[1, 0], [0, 1], [0, 1], [0, 0]], float)
    tuned = tune_thresholds(probs, targets, ["a", "b"])
    cut = np.array([tuned["thresholds"]["a"], tuned["thresholds"]["b"]])
    on = probs >= cut
    assert tuned["promised"] == {
        "precision": (on & (targets > 0)).sum() / on.sum(),
        "recall": (on & (targets > 0)).sum() / targets.sum(),
    }


def test_a_tag_without_validation_positives_takes_the_shared_threshold() -> None:
    probs = np.array([[0.9, 0.3], [0.1, 0.2]])
    tuned = tune_thresholds(probs, np.array([[1, 0], [0, 0]], float), ["a", "b"])
    assert tuned["untuned"] == ["b"] and tuned["thresholds"]["b"] == tuned["shared"] and tuned["f1"]["b"] is None
    nothing = tune_thresholds(probs, np.zeros((2, 2)), ["a", "b"])
    assert nothing["thresholds"] == {"a": 0.5, "b": 0.5} and nothing["promised"]["recall"] is None
