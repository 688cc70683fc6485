"""Scoring a run on another data set: only shared tags, every clip tagged like `autotag tag`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from autotag.cli.main import main
from autotag.serving.evaluate import evaluate_run
from autotag.serving.tagger import Tagger
from tests.conftest import write_csv_dataset


def test_a_run_scores_on_its_own_test_split_as_well_as_training_said(trained_run: Path, demo_dataset: Path) -> None:
    scores = evaluate_run(trained_run, demo_dataset, split="test")
    recorded = json.loads((trained_run / "metrics.json").read_text())
    assert scores["clips"] == recorded["test_clips"] and scores["tags_not_in_run"] == []
    # Training scores evenly spaced chunks, `tag` every chunk of the whole clip: close, not equal.
    assert scores["roc_auc_macro"] == pytest.approx(recorded["roc_auc_macro"], abs=0.05)


def test_only_shared_tags_count_and_none_shared_is_a_clear_error(
    trained_run: Path, demo_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    labels = Tagger.load(trained_run).labels
    other = tmp_path / "other"
    shutil.copytree(demo_dataset / "audio", other / "audio")
    clips = [f"audio/{c.name}" for c in sorted((other / "audio").glob("*.wav"))[:8]]
    rows = [(c, f"{labels[0]};kazoo" if i % 2 else "kazoo", "test") for i, c in enumerate(clips)]
    write_csv_dataset(other, rows)
    assert main(["evaluate", str(trained_run), "--data", str(other)]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert list(scores["per_tag"]) == [labels[0]] and scores["tags_not_in_run"] == ["kazoo"]
    write_csv_dataset(other, [(c, "kazoo;ocarina", "test") for c in clips])
    assert main(["evaluate", str(trained_run), "--data", str(other)]) == 2
    assert "have none in common" in capsys.readouterr().err
