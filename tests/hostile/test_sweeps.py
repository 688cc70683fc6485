"""Hostile sweep spaces (issue 23): values each allowed by the schema that never make a valid
config together are refused when the sweep is made (exit 2, one line, no sweep folder),
not after 25 failed trials; a space only partly invalid is said once and goes on; a sweep
that fails in the foreground ends in one line and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from autotag.cli.main import main
from autotag.store.job import RunState
from autotag.sweeps import driver, manager
from autotag.sweeps.folder import SweepFolder, sweeps_folder

NEVER_VALID = ["--space", "n_fft=64:128", "--space", "hop_length=200:4096"]  # every hop above every n_fft


def test_a_space_without_a_valid_config_is_refused_before_anything_is_written(
    small_csv_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = tmp_path / "runs"
    args = ["sweep", "--data", str(small_csv_dataset), "--trials", "3", *NEVER_VALID, "--runs-dir", str(runs)]
    code = main([*args, "--model", "tiny"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith("autotag: error: no combination of the space makes a valid config"), err
    assert "n_fft=64, hop_length=200 (hop_length 200 must not exceed n_fft 64)" in err
    assert not runs.exists()  # no sweep folder, no study, no audit line


def test_a_partly_invalid_space_is_said_once_and_the_sweep_is_made(
    small_csv_dataset: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """n_fft 64..1024 against hop_length 128..512: a hop above n_fft is invalid, the rest is fine."""
    with caplog.at_level(logging.WARNING, logger="autotag.sweeps"):
        folder = manager.new_sweep(
            {"data": str(small_csv_dataset), "model": "tiny"},
            ["n_fft=64:1024", "hop_length=128:512"],
            trials=2,
            runs_dir=tmp_path / "runs",
        )
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.startswith("warning: ") and "combinations checked" in warning, warning
    assert "(hop_length 128 must not exceed n_fft 64)" in warning and "\n" not in warning
    share = int(warning.split("(")[1].split("%")[0])
    assert 10 <= share <= 60, warning  # n_fft below hop_length in about a third of the space
    assert folder.is_sweep and folder.read_status().state is RunState.QUEUED  # made, not started
    assert [p.name for p in sweeps_folder(tmp_path / "runs").iterdir()] == [folder.name]


def test_a_sweep_failing_in_the_foreground_ends_in_one_line_and_exit_1(
    small_csv_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sweep made before spaces were checked (as by an older version): its driver gives up
    after MAX_INVALID invalid configs in a row. No trial trains: none has a valid config."""
    monkeypatch.setattr(manager, "check_space", lambda *_: None, raising=False)
    monkeypatch.setattr(driver, "MAX_INVALID", 3)  # 25 as shipped: a few seconds of SQLite writes more
    runs = tmp_path / "runs"
    args = ["sweep", "--data", str(small_csv_dataset), "--trials", "3", *NEVER_VALID, "--runs-dir", str(runs)]
    code = main([*args, "--model", "tiny"])
    out, err = capsys.readouterr()
    folder = SweepFolder(Path(out.splitlines()[-1]))
    assert code == 1 and "Traceback" not in err
    last = err.splitlines()[-1]
    assert last.startswith(f"autotag: error: sweep {folder.name} failed: 3 configs in a row were invalid; the last: ")
    assert re.search(r"the last: hop_length \d+ must not exceed n_fft \d+$", last), last
    status = folder.read_status()
    assert status.state is RunState.FAILED and "3 configs in a row were invalid" in (status.error or "")


def test_a_failing_background_driver_ends_with_one_log_line(
    small_csv_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`python -m autotag.sweeps.driver SWEEP`, whose output is sweep.log, run here in-process."""
    monkeypatch.setattr(manager, "check_space", lambda *_: None, raising=False)
    monkeypatch.setattr(driver, "MAX_INVALID", 3)
    fixed = {"data": str(small_csv_dataset), "model": "tiny"}
    folder = manager.new_sweep(fixed, ["n_fft=64:128", "hop_length=200:4096"], trials=2, runs_dir=tmp_path / "runs")
    assert driver.main([str(folder.path)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.splitlines()[-1].startswith("sweep failed: 3 configs in a row were invalid")
    assert folder.read_status().state is RunState.FAILED
