"""fit() as a Python call: run folder contents, status transitions, failures recorded."""

import json
from pathlib import Path

import pytest

from autotag.runs import create_run, read_status
from autotag.train import fit
from tests.conftest import tiny_config

pytestmark = pytest.mark.slow


def test_fit_api_records_progress_and_skipped_clips(small_csv_dataset: Path, tmp_path: Path) -> None:
    (small_csv_dataset / "audio" / "01.wav").write_bytes(b"RIFF broken")
    config = tiny_config(small_csv_dataset, max_epochs=3)
    run_dir = create_run(config, tmp_path / "runs", "api test")
    assert "_api-test_" in run_dir.name and read_status(run_dir)["state"] == "queued"
    metrics = fit(config, run_dir)
    status = read_status(run_dir)
    assert status["state"] == "completed" and status["epoch"] == 3 and status["skipped_clips"] == 1
    assert status["best_val_loss"] == pytest.approx(metrics["best_val_loss"])
    report = json.loads((run_dir / "data_report.json").read_text())
    assert report["undecodable"] == ["audio/01.wav"]
    assert "skipped 1 undecodable audio: audio/01.wav" in (run_dir / "train.log").read_text()
    assert json.loads((run_dir / "labels.json").read_text()) == ["a", "b", "c"]


def test_a_failing_run_says_why_in_its_status(small_csv_dataset: Path, tmp_path: Path) -> None:
    config = tiny_config(small_csv_dataset)
    run_dir = create_run(config, tmp_path / "runs")
    for wav in (small_csv_dataset / "audio").glob("*.wav"):
        wav.write_bytes(b"junk")  # every file breaks after the run was queued
    with pytest.raises(ValueError, match="no usable clips"):
        fit(config, run_dir)
    status = read_status(run_dir)
    assert status["state"] == "failed" and "no usable clips" in status["error"]
