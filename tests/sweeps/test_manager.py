"""Sweeps end to end through their manager: real trials of `tiny` as runs, pruning, kills,
stop and resume, two workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from autotag.runs import manager as runs
from autotag.store.job import RunState
from autotag.store.run_folder import RunFolder
from autotag.sweeps import manager
from autotag.sweeps.folder import SweepFolder
from autotag.sweeps.results import best_row, load_study, trial_rows
from autotag.training.trial import TrialLink
from tests.conftest import paused, wait_until

pytestmark = pytest.mark.slow

FIXED_OPTIONS = ["--model", "tiny", "--batch-size", "8", "--chunk-seconds", "0.5", "--chunks-per-clip", "1"]
FIXED = {"model": "tiny", "batch_size": 8, "chunk_seconds": 0.5, "chunks_per_clip": 1}


def _autotag(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "autotag", *args], capture_output=True, text=True, timeout=timeout)


def _training_trial(runs_dir: Path, exclude: set[Path] = frozenset()) -> runs.RunInfo | None:
    for info in runs.list_runs(runs_dir):
        if info.path not in exclude and info.state is RunState.RUNNING and (info.status.epoch or 0) >= 2:
            return info
    return None


def test_a_six_trial_sweep_from_the_cli_prunes_a_hopeless_learning_rate(demo_dataset: Path, tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs"
    # Three sound learning rates first, so the median pruner has trials to compare with, then lr 1.0.
    tries = [a for lr in ("0.003", "0.002", "0.005", "1.0") for a in ("--try", f"lr={lr}")]
    done = _autotag(
        "sweep", "--data", str(demo_dataset), "--trials", "6", "--space", "lr=1e-4:1.0:log", *tries,
        "--max-epochs", "4", "--patience", "4", "--sampler-seed", "0", "--name", "e2e",
        "--runs-dir", str(runs_dir), *FIXED_OPTIONS,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    folder = SweepFolder(Path(done.stdout.strip().splitlines()[-1]))
    assert folder.is_sweep and folder.path.parent == runs_dir / "sweeps"

    rows = trial_rows(load_study(folder))
    assert len(rows) == 6 and {r.state for r in rows} <= {"complete", "pruned"}
    hopeless = rows[3]
    assert hopeless.params == {"lr": 1.0} and hopeless.state == "pruned", rows
    assert [r.params["lr"] for r in rows[:3]] == [0.003, 0.002, 0.005]
    assert len({r.run for r in rows}) == 6  # one run per trial
    for row in rows:
        run = RunFolder(Path(row.run))
        link = TrialLink.read(run.trial)
        assert link is not None and link.number == row.number and link.sweep == str(folder.path)
        assert run.read_config()["lr"] == row.params["lr"]
        assert run.read_status().state == ("pruned" if row.state == "pruned" else "completed")
    pruned = RunFolder(Path(hopeless.run)).read_status()
    assert (
        pruned.epoch is not None and pruned.epoch < 4 and pruned.best_checkpoint
    )  # it stopped early, with a checkpoint
    best = best_row(load_study(folder))
    assert best is not None and best.state == "complete"
    assert RunFolder(Path(best.run)).read_status().best_val_metrics["val_loss"] == pytest.approx(best.value)

    shown = _autotag("sweep", "show", folder.name, "--runs-dir", str(runs_dir))
    assert shown.returncode == 0 and f"best: trial {best.number}" in shown.stdout
    assert "pruned" in shown.stdout
    listed = _autotag("sweep", "list", "--runs-dir", str(runs_dir))
    assert folder.name in listed.stdout and "completed" in listed.stdout and "6/6" in listed.stdout


def test_kill_9_of_a_trial_and_of_the_driver_then_resume_finishes_exactly_n_trials(
    demo_dataset: Path, tmp_path: Path
) -> None:
    runs_dir = tmp_path / "runs"
    fixed = {"data": str(demo_dataset), "max_epochs": 8, "patience": 8, **FIXED}
    folder = manager.new_sweep(
        fixed, ["lr=1e-3:1e-2:log"], trials=3, pruner="none", runs_dir=runs_dir, name="kill", seed=0
    )
    manager.start(folder)
    try:
        # A trial's trainer dies: its run is crashed, and its parameters run again as a new trial.
        first = wait_until("a trial in training", lambda: _training_trial(runs_dir))
        with paused(first.status.pid):  # killed while it trains, however fast the machine
            assert runs.derive_state(first.path) is RunState.RUNNING, "the trial ended before the test could kill it"
            os.kill(first.status.pid, signal.SIGKILL)
        study = load_study(folder)
        retried = wait_until(
            "the crashed trial's retry",
            lambda: [
                r for r in trial_rows(study) if r.run and Path(r.run) != first.path and r.params == _params(first)
            ],
        )
        assert runs.derive_state(first.path) is RunState.CRASHED
        # The driver dies while a trial trains: the trial goes on without it.
        second = wait_until("another trial in training", lambda: _training_trial(runs_dir, {first.path}))
        driver = folder.read_status()
        with paused(second.status.pid):  # still training when its driver dies, however fast the machine
            assert runs.derive_state(second.path) is RunState.RUNNING, "the trial ended before the driver's kill"
            os.kill(driver.pid, signal.SIGKILL)
            wait_until("the driver's end", lambda: manager.derive_state(folder) is RunState.CRASHED, timeout=10)
        assert runs.derive_state(second.path).active
    except BaseException:
        manager.stop(folder)
        raise

    done = _autotag("sweep", "resume", str(folder.path))
    assert done.returncode == 0, done.stderr[-3000:]
    assert manager.derive_state(folder) is RunState.COMPLETED
    rows = trial_rows(load_study(folder))
    finished = [r for r in rows if r.state in ("complete", "pruned")]
    assert len(finished) == 3, rows
    assert len({r.run for r in finished}) == 3  # no run counted twice
    # The crashed trial failed and its retry finished once; the orphaned trial was taken over, not rerun.
    assert [r.state for r in rows if r.run == str(first.path)] == ["fail"]
    assert sum(r.params == _params(first) for r in finished) == 1 and retried
    assert [r.state for r in rows if r.run == str(second.path)] == ["complete"]
    assert RunFolder(second.path).read_status().state is RunState.COMPLETED


def _params(info: runs.RunInfo) -> dict:
    return {"lr": RunFolder(info.path).read_config()["lr"]}


def test_two_workers_on_one_sqlite_study_run_n_trials_in_total(
    demo_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTOTAG_MAX_RUNS", "2")
    runs_dir = tmp_path / "runs"
    fixed = {"data": str(demo_dataset), "max_epochs": 2, "patience": 2, **FIXED}
    folder = manager.new_sweep(fixed, ["lr=1e-3:1e-2:log"], trials=4, pruner="none", runs_dir=runs_dir, seed=0)
    command = [sys.executable, "-m", "autotag.sweeps.driver", str(folder.path)]
    workers = [subprocess.Popen(command), subprocess.Popen([*command, "--worker"])]
    try:
        assert [w.wait(timeout=400) for w in workers] == [0, 0]
    finally:
        for w in workers:
            w.kill()
    rows = trial_rows(load_study(folder))
    states = Counter(r.state for r in rows)
    assert states["complete"] == 4 and states.keys() <= {"complete", "fail"}, rows
    # A trial asked by both at once beyond the budget is failed at once, never run.
    assert all(r.run is None for r in rows if r.state == "fail")
    study = load_study(folder)
    owners = {t.user_attrs["worker"] for t in study.get_trials() if t.state.name == "COMPLETE"}
    assert len(owners) == 2  # both workers ran trials
    assert manager.derive_state(folder) is RunState.COMPLETED


def test_stop_then_resume_runs_the_stopped_trials_parameters_again(demo_dataset: Path, tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs"
    fixed = {"data": str(demo_dataset), "max_epochs": 6, "patience": 6, **FIXED}
    folder = manager.new_sweep(fixed, ["lr=1e-3:1e-2:log"], trials=2, pruner="none", runs_dir=runs_dir, seed=1)
    manager.start(folder)
    training = wait_until("a trial in training", lambda: _training_trial(runs_dir))
    # Held still until the stop has reached it, so that it is stopped while it trains however
    # fast the machine (let go then: the stop waits for the trainer's own end).
    with paused(training.status.pid):
        assert runs.derive_state(training.path) is RunState.RUNNING, "the trial ended before the test could stop it"
        stopping = subprocess.Popen(
            [sys.executable, "-m", "autotag", "sweep", "stop", folder.name, "--runs-dir", str(runs_dir)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_until(
            "the stop to reach the trial",
            lambda: RunFolder(training.path).stop_request.exists() or stopping.poll() is not None,
        )
    out, err = stopping.communicate(timeout=300)
    assert stopping.returncode == 0 and out.strip().endswith("stopped"), err
    assert runs.derive_state(training.path) is RunState.STOPPED
    rows = trial_rows(load_study(folder))
    assert [r.state for r in rows] == ["fail", "waiting"] and rows[1].params == rows[0].params
    assert "stopped" in rows[0].note

    again = _autotag("sweep", "resume", folder.name, "--runs-dir", str(runs_dir))
    assert again.returncode == 0, again.stderr[-3000:]
    rows = trial_rows(load_study(folder))
    assert Counter(r.state for r in rows) == {"complete": 2, "fail": 1}
    assert any(r.state == "complete" and r.params == rows[0].params for r in rows)
    assert _autotag("sweep", "resume", folder.name, "--runs-dir", str(runs_dir)).returncode == 2  # completed
