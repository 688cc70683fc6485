"""Decision thresholds: each tag's precision-recall break-even, shrunk toward a shared one when positives are few."""

import numpy as np
import pytest

from autotag.training.thresholds import PRIOR_POSITIVES, break_even_cut, precision_recall, tune_thresholds


def test_the_break_even_cut_tags_as_many_clips_as_are_positive_midway_between_scores() -> None:
    p = np.array([0.9, 0.8, 0.4, 0.1])
    assert break_even_cut(p, np.array([1, 0, 1, 0])) == pytest.approx(0.6)  # tags 2 of 4: precision = recall
    assert break_even_cut(p, np.array([1, 1, 1, 1])) == pytest.approx(0.05)  # all positive: below the lowest
    # Two equal scores cannot be cut apart: the nearest count that can is taken, never a cut between them.
    assert break_even_cut(np.array([0.5, 0.5, 0.2]), np.array([1, 0, 0])) == pytest.approx(0.35)


def test_a_tag_with_few_positives_leans_on_the_shared_threshold_and_one_with_many_keeps_its_own() -> None:
    rng = np.random.default_rng(0)
    clips = 400
    many = rng.random(clips) < 0.5  # 200 positives
    few = np.zeros(clips, bool)
    few[:2] = True  # 2 positives, scored low: their own cut sits near 0.02
    probs = np.stack([np.where(many, rng.uniform(0.6, 1, clips), rng.uniform(0, 0.4, clips)), rng.random(clips)], 1)
    probs[:2, 1] = [0.03, 0.02]
    probs[2:, 1] *= 0.01  # every negative lower still
    tuned = tune_thresholds(probs, np.stack([many, few], 1).astype(float), ["many", "few"])
    own_few = break_even_cut(probs[:, 1], few)
    shared = tuned["shared"]
    assert own_few < 0.02 and tuned["positives"] == {"many": int(many.sum()), "few": 2}
    assert tuned["thresholds"]["few"] == pytest.approx((2 * own_few + PRIOR_POSITIVES * shared) / (2 + PRIOR_POSITIVES))
    own_many = break_even_cut(probs[:, 0], many)
    n = int(many.sum())
    expected = (n * own_many + PRIOR_POSITIVES * shared) / (n + PRIOR_POSITIVES)
    assert tuned["thresholds"]["many"] == pytest.approx(expected)
    assert abs(tuned["thresholds"]["many"] - own_many) <= 0.06 * abs(shared - own_many)  # 10 / 200 of the way
    assert 0.4 <= own_many <= 0.6


def test_no_tag_is_tuned_to_fire_on_more_validation_clips_than_carry_it() -> None:
    rng = np.random.default_rng(1)
    targets = rng.random((300, 5)) < [0.05, 0.1, 0.3, 0.5, 0.7]
    probs = np.clip(targets * 0.3 + rng.normal(0.35, 0.2, targets.shape), 0, 1)  # overlapping, as real scores are
    tuned = tune_thresholds(probs, targets.astype(float), list("abcde"))
    for j in range(5):
        own = break_even_cut(probs[:, j], targets[:, j])
        assert (probs[:, j] >= own).sum() == targets[:, j].sum()
    assert tuned["promised"]["precision"] == pytest.approx(tuned["promised"]["recall"], abs=0.05)


def test_precision_and_recall_are_micro_averaged_at_the_thresholds() -> None:
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.6], [0.1, 0.2]])
    targets = np.array([[1, 0], [0, 1], [0, 1], [0, 0]], float)
    assert precision_recall(probs, targets, {"a": 0.5, "b": 0.5}, ["a", "b"]) == {
        "precision": 3 / 4,
        "recall": 3 / 3,
        "clips": 4,
    }
    tuned = tune_thresholds(probs, targets, ["a", "b"])
    assert tuned["promised"] == precision_recall(probs, targets, tuned["thresholds"], ["a", "b"])
    assert precision_recall(probs, np.zeros((4, 2)), {"a": 2, "b": 2}, ["a", "b"]) == {
        "precision": None,
        "recall": None,
        "clips": 4,
    }


def test_a_tag_without_validation_positives_takes_the_shared_threshold() -> None:
    probs = np.array([[0.9, 0.3], [0.1, 0.2]])
    tuned = tune_thresholds(probs, np.array([[1, 0], [0, 0]], float), ["a", "b"])
    assert tuned["untuned"] == ["b"] and tuned["thresholds"]["b"] == tuned["shared"]
    nothing = tune_thresholds(probs, np.zeros((2, 2)), ["a", "b"])
    assert nothing["thresholds"] == {"a": 0.5, "b": 0.5} and nothing["promised"]["recall"] is None
