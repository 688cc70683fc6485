"""Scoring a run on a data set: only shared tags, every clip scored as the run's test scored it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from autotag.cli.main import main
from autotag.serving.evaluate import evaluate_run
from autotag.serving.tagger import Tagger
from tests.conftest import write_csv_dataset


def test_a_run_scores_on_its_own_test_split_exactly_as_its_test_did(trained_run: Path, demo_dataset: Path) -> None:
    scores = evaluate_run(trained_run, demo_dataset, split="test")
    recorded = json.loads((trained_run / "metrics.json").read_text())
    assert scores["clips"] == recorded["test_clips"] and scores["tags_not_in_run"] == []
    for key in ("roc_auc_macro", "pr_auc_macro"):
        assert scores[key] == pytest.approx(recorded[key], abs=1e-6), key


def test_only_shared_tags_count_and_none_shared_is_a_clear_error(
    trained_run: Path, demo_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    labels = Tagger.load(trained_run).labels
    other = tmp_path / "other"
    shutil.copytree(demo_dataset / "audio", other / "audio")
    clips = [f"audio/{c.name}" for c in sorted((other / "audio").glob("*.wav"))[:8]]
    rows = [(c, f"{labels[0]};kazoo" if i % 2 else "kazoo", "test") for i, c in enumerate(clips)]
    write_csv_dataset(other, rows)
    silent = other / clips[0]
    sf.write(silent, np.zeros(sf.info(silent).frames, "f4"), sf.info(silent).samplerate)
    assert main(["evaluate", str(trained_run), "--data", str(other)]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert list(scores["per_tag"]) == [labels[0]] and scores["tags_not_in_run"] == ["kazoo"]
    assert scores["clips"] == 7 and scores["skipped"] == [f"{clips[0]}: silent throughout"]
    write_csv_dataset(other, [(c, "kazoo;ocarina", "test") for c in clips])
    assert main(["evaluate", str(trained_run), "--data", str(other)]) == 2
    assert "have none in common" in capsys.readouterr().err
