"""Background runs: real trainer processes killed, stopped, resumed, queued and listed again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from autotag.config import make_config
from autotag.runs import manager
from autotag.runs.curves import CurveReader
from autotag.store.job import RunState
from autotag.store.procs import is_alive, process_start_time
from autotag.store.run_folder import RunError, RunFolder, create_run
from tests.conftest import paused, tiny_config, wait_for_run

pytestmark = pytest.mark.slow


def _finished(status: dict) -> bool:
    return RunState.of(status["state"]).final


def test_kill_9_is_crashed_and_resume_finishes_with_every_step_once(small_csv_dataset: Path) -> None:
    run = manager.launch(tiny_config(small_csv_dataset, max_epochs=40, patience=100))
    status = wait_for_run(run, lambda s: s["state"] == "running" and s.get("epoch", 0) >= 3)
    with paused(status["pid"]):  # killed before its last epoch, however fast the machine
        assert manager.derive_state(run) is RunState.RUNNING, "the run ended before the test could kill it"
        os.kill(status["pid"], signal.SIGKILL)
    status = wait_for_run(run, _finished, timeout=20)
    assert status["state"] == "crashed"
    assert "ended without a final state" in status["error"]

    manager.resume(run)
    status = wait_for_run(run, _finished)
    assert status["state"] == "completed", manager.log_tail(run)
    reader = CurveReader(run / "tb")
    reader.refresh()
    steps = reader.get("train_loss").steps
    assert steps == sorted(set(steps)), "a step was plotted twice"
    val = reader.get("val_loss").steps
    assert len(val) == 40 and val == sorted(set(val))  # one point per epoch across both processes


def test_stop_is_stopped_not_completed_and_resumable(small_csv_dataset: Path) -> None:
    run = manager.launch(tiny_config(small_csv_dataset, max_epochs=200, patience=100))
    wait_for_run(run, lambda s: s["state"] == "running" and s.get("epoch", 0) >= 2)
    assert manager.stop(run) == "stopped"
    status = RunFolder(run).read_status().to_json()
    assert status["state"] == "stopped" and not status.get("forced")
    assert not is_alive(status["pid"], status["pid_start"])
    assert not (run / "metrics.json").exists()
    with pytest.raises(RunError, match="is not running"):
        manager.stop(run)
    first_clock = status["train_clock"]
    ckpt = manager.resume(run)
    assert ckpt.name == "last.ckpt"
    status = wait_for_run(run, lambda s: s["state"] == "running" and s.get("train_clock") and s.get("epoch", 0) >= 4)
    # The ETA's clock starts again at the resumed step, not at the first process's start.
    assert status["train_clock"][0] > status["started"] > first_clock[0] and status["train_clock"][1] > 0
    assert manager.stop(run) == "stopped"


def test_queue_respects_the_limit_and_drains_by_itself(small_csv_dataset: Path, monkeypatch) -> None:
    monkeypatch.setenv("AUTOTAG_MAX_RUNS", "1")
    runs = [manager.launch(tiny_config(small_csv_dataset, max_epochs=2, seed=i), name=f"q{i}") for i in range(3)]
    states = [manager.derive_state(r) for r in runs]
    assert states.count("queued") == 2 and states[0] in ("starting", "running")
    for run in runs:  # the finishing trainer starts the next one; nobody polls in between
        assert wait_for_run(run, _finished)["state"] == "completed", manager.log_tail(run)
    starts = [RunFolder(r).read_status().started for r in runs]
    ends = [RunFolder(r).read_status().ended for r in runs]
    assert starts[1] >= ends[0] and starts[2] >= ends[1]  # never two at once


def test_same_launch_token_gives_one_run(small_csv_dataset: Path, monkeypatch) -> None:
    monkeypatch.setenv("AUTOTAG_MAX_RUNS", "1")
    config = tiny_config(small_csv_dataset, max_epochs=1)
    first = manager.launch(config, token="click")
    assert manager.launch(config, token="click") == first
    assert len(manager.list_runs()) == 1
    wait_for_run(first, _finished)


def test_a_restarted_dashboard_finds_every_run(small_csv_dataset: Path, tmp_path: Path) -> None:
    run = manager.launch(tiny_config(small_csv_dataset, max_epochs=1))
    wait_for_run(run, _finished)
    done = subprocess.run(
        [sys.executable, "-m", "autotag", "runs", "list"],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        check=True,
    )
    assert run.name in done.stdout and "completed" in done.stdout
    shown = subprocess.run(
        [sys.executable, "-m", "autotag", "runs", "show", run.name],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        check=True,
    )
    assert '"state": "completed"' in shown.stdout and "model: tiny" in shown.stdout
    with pytest.raises(RunError, match="no run"):
        manager.resolve_run("nope")
    manager.delete(run)
    assert not run.exists()


def test_dead_zombie_and_reused_pids_are_not_running(tmp_path: Path, small_csv_dataset: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    start = process_start_time(child.pid)
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # exited, not yet reaped: a zombie
    assert not is_alive(child.pid, start)
    config = tiny_config(small_csv_dataset)
    from autotag.store.run_folder import create_run

    run = create_run(config)
    # Our own pid is alive, but with another start time it is not the trainer any more.
    RunFolder(run).write_status(state="running", pid=os.getpid(), pid_start=process_start_time(os.getpid()) - 1)
    assert manager.derive_state(run) == "crashed"
    with pytest.raises(RunError, match="only stopped, crashed or failed runs can resume|no checkpoint"):
        manager.resume(run)


def test_delete_refuses_a_running_run(small_csv_dataset: Path) -> None:
    run = manager.launch(tiny_config(small_csv_dataset, max_epochs=200, patience=100))
    wait_for_run(run, lambda s: s["state"] == "running")
    with pytest.raises(RunError, match="stop it before deleting"):
        manager.delete(run)
    manager.stop(run)
    manager.delete(run)
    assert not run.exists()


def test_run_states_are_typed_and_stored_as_plain_strings(tmp_path: Path) -> None:
    assert {s for s in RunState if s.active} == {RunState.STARTING, RunState.RUNNING}
    assert {s for s in RunState if s.stoppable} == {RunState.STARTING, RunState.RUNNING, RunState.QUEUED}
    assert {s for s in RunState if s.resumable} == {RunState.STOPPED, RunState.CRASHED, RunState.FAILED}
    # A pruned trial has ended for good: its sweep decided so, and resuming it would undo that.
    assert {s for s in RunState if s.final} == {s for s in RunState if s.resumable} | {
        RunState.COMPLETED,
        RunState.PRUNED,
    }
    assert RunState.of("no such state") is RunState.UNKNOWN and RunState.of(None) is RunState.UNKNOWN
    RunFolder(tmp_path).write_status(state=RunState.CRASHED)
    assert '"state": "crashed"' in (tmp_path / "status.json").read_text()
    assert manager.derive_state(tmp_path) is RunState.CRASHED


def test_runs_are_listed_newest_first_also_when_a_user_named_the_folder(tmp_path: Path) -> None:
    config = make_config(data=str(tmp_path), model="tiny")
    first = create_run(config, tmp_path / "runs", "first")
    named = create_run(config, folder=tmp_path / "runs" / "mtat-ddp")  # as torchrun --run-dir makes it
    last = create_run(config, tmp_path / "runs", "last")
    RunFolder(first).write_status(created=1.0)
    RunFolder(named).write_status(created=2.0)
    RunFolder(last).write_status(created=3.0)
    assert [r.path for r in manager.list_runs(tmp_path / "runs")] == [last, named, first]


def test_each_action_says_why_it_cannot_work_now(tmp_path: Path) -> None:
    """What the Runs page disables its buttons with, and the library refuses with."""
    run = create_run(make_config(data=str(tmp_path), model="tiny"), tmp_path / "runs")
    folder = RunFolder(run)

    def why(action: manager.Action, state: RunState) -> str | None:
        return manager.unavailable(action, manager.RunInfo(run, state, folder.read_status()))

    assert why("stop", RunState.RUNNING) is None
    assert why("stop", RunState.COMPLETED) == "it is completed: there is nothing to stop"
    assert why("delete", RunState.RUNNING) == "it is training: stop it first"
    assert why("delete", RunState.STOPPED) is None
    assert why("resume", RunState.COMPLETED) == "it is completed; only stopped, crashed or failed runs can resume"
    assert why("resume", RunState.STOPPED).startswith("it has no checkpoint to resume from")
    assert why("report", RunState.RUNNING) == "it is running: a report scores a run that has ended"
    assert why("report", RunState.STOPPED) == "it has no checkpoint to score (it ended before its first one)"
    folder.write_status(state=RunState.STOPPED)
    with pytest.raises(RunError, match="cannot resume: it has no checkpoint to resume from"):
        manager.resume(run)
    folder.checkpoints.mkdir()
    (folder.checkpoints / "last.ckpt").write_bytes(b"a checkpoint")
    assert why("resume", RunState.STOPPED) is None and why("report", RunState.COMPLETED) is None
