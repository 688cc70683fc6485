"""Deciding a clip's tags from its probabilities: the Tag page and `tag --format tags` agree."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from autotag.cli.main import main
from autotag.serving.decide import Tuning, decision_thresholds, read_tuning, tags_above, tuned_thresholds
from autotag.serving.tagger import Prediction
from autotag.store.run_folder import RunFolder


def _prediction(clip: dict[str, float]) -> Prediction:
    labels = list(clip)
    return Prediction(labels, clip, np.array([list(clip.values())]), np.zeros(1), 1.0)


def test_a_tag_is_on_at_or_above_its_threshold_most_probable_first() -> None:
    pred = _prediction({"piano": 0.4, "drums": 0.9, "rock": 0.2, "fast": 0.5})
    assert tags_above(pred, {"piano": 0.3, "drums": 0.95, "rock": 0.1, "fast": 0.5}) == ["fast", "piano", "rock"]
    assert tags_above(pred, {}) == ["drums", "fast"]  # no threshold: 0.5


def test_one_cut_beats_the_tuned_thresholds_and_missing_tuned_ones_are_half() -> None:
    labels = ["a", "b"]
    assert decision_thresholds(labels, {"a": 0.2, "b": 0.7}, cut=0.4) == {"a": 0.4, "b": 0.4}
    assert decision_thresholds(labels, {"a": 0.2}) == {"a": 0.2, "b": 0.5}
    assert decision_thresholds(labels) == {"a": 0.5, "b": 0.5}


def test_tuned_thresholds_are_none_until_training_wrote_them(tmp_path: Path) -> None:
    run = RunFolder(tmp_path)
    assert tuned_thresholds(tmp_path) is None
    run.thresholds.write_text("{broken")
    assert tuned_thresholds(tmp_path) is None
    run.thresholds.write_text(json.dumps({"thresholds": {"a": 0.25}}))
    assert tuned_thresholds(tmp_path) == {"a": 0.25}
    # Anyone may edit the file: what is no probability leaves its tag at the default.
    run.thresholds.write_text('{"thresholds": {"a": 0.25, "b": "x", "c": NaN, "d": 7, "e": true, "f": [1]}}')
    assert tuned_thresholds(tmp_path) == {"a": 0.25}


def test_the_positives_and_the_held_out_promise_are_read_as_far_as_they_are_sound(tmp_path: Path) -> None:
    run = RunFolder(tmp_path)
    run.thresholds.write_text(json.dumps({"thresholds": {"a": 0.25}}))  # a run from before they were recorded
    assert read_tuning(tmp_path) == Tuning({"a": 0.25}, {}, None)
    record = {"thresholds": {"a": 0.25, "b": 0.5}, "positives": {"a": 3, "b": -1, "c": "x", "d": True}}
    run.thresholds.write_text(json.dumps({**record, "held_out": {"precision": 0.6, "recall": 0.7, "clips": 30}}))
    assert read_tuning(tmp_path) == Tuning({"a": 0.25, "b": 0.5}, {"a": 3}, (0.6, 0.7, 30))
    for damaged in ({"precision": None, "recall": 0.7, "clips": 30}, {"precision": 0.6, "recall": 2, "clips": 30}):
        run.thresholds.write_text(json.dumps({**record, "held_out": damaged}))
        assert read_tuning(tmp_path).held_out is None


def test_training_measures_its_thresholds_on_the_test_split(trained_run: Path) -> None:
    record = json.loads(RunFolder(trained_run).thresholds.read_text())
    metrics = json.loads(RunFolder(trained_run).metrics.read_text())
    assert record["held_out"]["clips"] == metrics["test_clips"]
    assert 0 < record["held_out"]["precision"] <= 1 and 0 < record["held_out"]["recall"] <= 1
    assert read_tuning(trained_run).held_out == tuple(record["held_out"][k] for k in ("precision", "recall", "clips"))


def test_tag_format_tags_decides_like_the_tag_page(
    trained_run: Path, demo_dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = str(demo_dataset / "audio" / "clip_0000.wav")
    assert main(["tag", "--run", str(trained_run), clip]) == 0
    scores = json.loads(capsys.readouterr().out)[clip]
    tuned = json.loads(RunFolder(trained_run).thresholds.read_text())["thresholds"]
    assert main(["tag", "--run", str(trained_run), clip, "--format", "tags"]) == 0
    decided = json.loads(capsys.readouterr().out)[clip]
    assert decided == sorted((t for t in scores if scores[t] >= tuned[t]), key=lambda t: -scores[t])
    assert main(["tag", "--run", str(trained_run), clip, "--format", "tags", "--threshold", "0"]) == 0
    assert sorted(json.loads(capsys.readouterr().out)[clip]) == sorted(scores)


def test_a_threshold_out_of_range_or_without_tags_format_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["tag", "--run", str(tmp_path), "clip.wav", "--format", "tags", "--threshold", "1.5"])
    assert exc.value.code == 2 and "must be between 0 and 1, got 1.5" in capsys.readouterr().err
    assert main(["tag", "--run", str(tmp_path), "clip.wav", "--threshold", "0.3"]) == 2
    assert "--threshold decides tags: use it with --format tags" in capsys.readouterr().err
