import math

import pytest
import torch

from autotag.training.metrics import clip_average, tag_scores, unscored_note


def test_unscorable_tags_are_reported_not_averaged_in() -> None:
    probs = torch.tensor([[0.9, 0.2, 0.5], [0.1, 0.8, 0.5], [0.8, 0.3, 0.5]])
    targets = torch.tensor([[1, 0, 0], [0, 1, 0], [1, 0, 0]])
    scores = tag_scores(probs, targets, ["a", "b", "c"])
    assert scores["unscored_tags"] == ["c"]
    assert scores["roc_auc_macro"] == pytest.approx(1.0)
    assert scores["per_tag"]["c"] == {"roc_auc": None, "pr_auc": None, "positives": 0}
    assert scores["per_tag"]["b"]["positives"] == 1


def test_no_scorable_tag_gives_nan() -> None:
    scores = tag_scores(torch.rand(2, 2), torch.ones(2, 2), ["a", "b"])
    assert math.isnan(scores["roc_auc_macro"]) and scores["unscored_tags"] == ["a", "b"]


def test_clip_average() -> None:
    probs = torch.tensor([[0.2], [0.4], [1.0]])
    out = clip_average(probs, torch.tensor([0, 0, 1]), 2)
    assert out.squeeze(1).tolist() == pytest.approx([0.3, 1.0])


def test_a_split_that_ranks_no_tag_gets_a_note_naming_it() -> None:
    none = tag_scores(torch.rand(3, 2), torch.tensor([[1, 0], [1, 0], [1, 0]]), ["a", "b"])
    assert unscored_note(none, "valid") == (
        "no tag in the valid split has both a positive and a negative clip, so ROC-AUC and PR-AUC are n/a"
    )
    some = tag_scores(torch.rand(3, 2), torch.tensor([[1, 0], [0, 0], [1, 0]]), ["a", "b"])
    assert unscored_note(some, "valid") is None  # "a" is ranked; "b" is listed in unscored_tags
