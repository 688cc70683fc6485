"""Training time before Launch: timed once per machine and input, scaled to the run."""

from __future__ import annotations

from pathlib import Path

import pytest

from autotag.data.prepare import open_dataset
from autotag.training import estimate
from tests.conftest import tiny_config


def test_steps_are_timed_once_then_the_estimate_scales_with_the_run(
    small_csv_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(estimate, "_cache_file", lambda: tmp_path / "step_times.json")
    timed = []
    real = estimate._time_in_child
    monkeypatch.setattr(estimate, "_time_in_child", lambda *a: timed.append(a) or real(*a))
    config = tiny_config(small_csv_dataset, max_epochs=10, batch_size=4, chunk_seconds=0.5, chunks_per_clip=1)
    _, ds = open_dataset(config)
    first = estimate.estimate_run(config, ds.split("train"), ds.split("valid"))
    assert len(timed) == 1 and first.device == "cpu" and first.chunk_seconds > 0
    assert first.steps_per_epoch == 8 // 4 and first.run_s == pytest.approx(10 * first.epoch_s)
    # More epochs or chunks per clip cost proportionally more, without timing again.
    longer = tiny_config(small_csv_dataset, max_epochs=20, batch_size=4, chunk_seconds=0.5, chunks_per_clip=2)
    second = estimate.estimate_run(longer, ds.split("train"), ds.split("valid"))
    assert len(timed) == 1 and second.steps_per_epoch == 4 and second.epoch_s > first.epoch_s
    assert not first.long and estimate.TimeEstimate("cpu", 1.0, 1, 10.0, 7200.0).long


def test_step_times_are_kept_beside_the_feature_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.undo()  # the suite shares one file between tests (tests/conftest.py)
    monkeypatch.setenv("AUTOTAG_CACHE_DIR", str(tmp_path / "features"))
    assert estimate._cache_file() == tmp_path / "step_times.json"


def test_a_timing_that_fails_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(estimate, "_cache_file", lambda: tmp_path / "step_times.json")
    with pytest.raises(estimate.EstimateError, match="timing no_such_model's training steps failed: .*no_such_model"):
        estimate.chunk_seconds("no_such_model", 96, 188, "cpu")
    assert not (tmp_path / "step_times.json").exists()
