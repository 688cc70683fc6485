"""Fault injection for runs and checkpoints: kills, hangs, crowds and torn files."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import torch

from autotag.runs import manager
from autotag.runs.curves import CurveReader
from autotag.runs.table import summarize
from autotag.store.job import RunState, record_from_json
from autotag.store.procs import is_alive, process_start_time
from autotag.store.run_folder import RunError, RunFolder, RunStatus, create_run
from tests.conftest import tiny_config, wait_for_run

STUBBORN = textwrap.dedent(
    """
    import signal, subprocess, sys, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)   # a trainer stuck in a long batch
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])  # a DataLoader worker
    print(child.pid, flush=True)
    time.sleep(600)
    """
)


def test_a_trainer_that_ignores_sigterm_is_killed_with_its_group(small_csv_dataset: Path) -> None:
    run = create_run(tiny_config(small_csv_dataset))
    proc = subprocess.Popen([sys.executable, "-c", STUBBORN], stdout=subprocess.PIPE, text=True, start_new_session=True)
    worker = int(proc.stdout.readline())
    RunFolder(run).write_status(state="running", pid=proc.pid, pid_start=process_start_time(proc.pid))
    started = time.monotonic()
    assert manager.stop(run, grace=1.0) == "stopped"
    assert time.monotonic() - started < 10
    status = RunFolder(run).read_status()
    assert status.forced is True
    assert summarize(manager.RunInfo(run, RunState.STOPPED, status))["state"] == "stopped (forced)"
    proc.wait(timeout=5)
    deadline = time.monotonic() + 5
    while is_alive(worker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not is_alive(worker), "the worker in the trainer's process group survived"


def test_ten_launches_at_once_run_k_and_queue_the_rest(small_csv_dataset: Path, monkeypatch) -> None:
    monkeypatch.setenv("AUTOTAG_MAX_RUNS", "2")
    # Long enough that no run finishes while we count.
    config = tiny_config(small_csv_dataset, max_epochs=500, patience=100)
    made: list[Path] = []
    lock = threading.Lock()

    def go(i: int) -> None:
        run = manager.launch(config, name=f"t{i}")
        with lock:
            made.append(run)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert len(set(made)) == 10  # no two launches share a folder
        states = sorted(manager.derive_state(r) for r in made)
        assert states.count("queued") == 8 and len([s for s in states if s.active]) == 2
    finally:
        for run in made:
            if manager.derive_state(run).stoppable:
                manager.stop(run, grace=5)
    assert all(RunFolder(r).read_status().state == "stopped" for r in made)


def _every_checkpoint_loads(run: Path) -> None:
    for ckpt in (run / "checkpoints").glob("*.ckpt"):
        torch.load(ckpt, map_location="cpu", weights_only=True)
    strays = [p.name for folder in (run, run / "checkpoints") for p in folder.glob(".*.tmp-*")]
    assert not strays, strays


@pytest.mark.slow
def test_twenty_kill_9s_then_resume_reach_the_uninterrupted_end(small_csv_dataset: Path) -> None:
    # patience = max_epochs: early stopping (whose course depends on the random chunks
    # drawn, which Lightning does not checkpoint) cannot end either run early.
    config = tiny_config(small_csv_dataset, max_epochs=100, patience=100, seed=7)
    reference = manager.launch(config, name="reference")
    ref = wait_for_run(reference, lambda s: RunState.of(s["state"]).final, timeout=300)
    assert ref["state"] == "completed", manager.log_tail(reference)

    rng = random.Random(0)
    run = manager.launch(config, name="chaos")
    for kill in range(20):
        wait_for_run(run, lambda s: s["state"] == "running" and s.get("phase") == "training")
        time.sleep(rng.uniform(0.0, 0.4))  # mid-epoch, in validation, or while a checkpoint is written
        status = RunFolder(run).read_status().to_json()
        if status.get("state") == "completed":
            break
        os.kill(status["pid"], 9)
        crashed = wait_for_run(run, lambda s: RunState.of(s["state"]).final, timeout=20)
        assert crashed["state"] == "crashed", (kill, crashed["state"])
        _every_checkpoint_loads(run)
        if (run / "checkpoints" / "last.ckpt").exists():
            manager.resume(run)
        else:  # killed before the first checkpoint: nothing to resume, so start the run again
            RunFolder(run).write_status(state="queued")
            manager.schedule(run.parent)
    final = wait_for_run(run, lambda s: RunState.of(s["state"]).final, timeout=300)
    assert final["state"] == "completed", manager.log_tail(run)
    assert kill == 19, "the run finished before 20 kills; raise max_epochs"
    ours, theirs = (json.loads((r / "metrics.json").read_text()) for r in (run, reference))
    assert (ours["epochs"], ours["global_step"]) == (theirs["epochs"], theirs["global_step"])
    reader = CurveReader(run / "tb")
    reader.refresh()
    val = reader.get("val_loss").steps
    assert len(val) == 100 and val == sorted(set(val)), "an epoch was plotted twice or lost"
    _every_checkpoint_loads(run)


@pytest.mark.slow
def test_resume_skips_a_torn_last_checkpoint_and_never_restarts_from_zero(small_csv_dataset: Path) -> None:
    run = manager.launch(tiny_config(small_csv_dataset, max_epochs=100, patience=100))
    wait_for_run(run, lambda s: s["state"] == "running" and s.get("epoch", 0) >= 5)
    manager.stop(run)
    last = run / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    best = next((run / "checkpoints").glob("best-*.ckpt"))
    stopped_at = RunFolder(run).read_status().epoch or 0
    assert manager.resume(run) == best
    # Two epochs past the stop: status.json keeps the stopped epoch until the resumed trainer writes.
    status = wait_for_run(run, lambda s: s["state"] == "running" and s.get("epoch", 0) >= stopped_at + 2)
    assert "resuming from best-" in manager.log_tail(run, 200)
    assert status["global_step"] > 0
    manager.stop(run)

    for ckpt in (run / "checkpoints").glob("*.ckpt"):
        ckpt.write_bytes(b"garbage")
    with pytest.raises(RunError, match="no checkpoint to resume from"):
        manager.resume(run)
    assert RunFolder(run).read_status().state == "stopped"  # not queued, not restarted from step 0


@pytest.fixture
def tmpfs(tmp_path: Path):  # noqa: ANN201 - yields a mount factory
    """Mount small tmpfs file systems (needs root, as in CI); unmounted afterwards."""
    mounted: list[Path] = []

    def mount(options: str) -> Path:
        point = tmp_path / f"mnt{len(mounted)}"
        point.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.decode().strip()}")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], check=False)


@pytest.mark.parametrize(
    ("options", "message"), [("ro,size=1m", "is not writable: Read-only file system"), ("size=64k", "MB free in")]
)
def test_read_only_or_full_runs_folder_is_refused_before_training(
    tmpfs,
    small_csv_dataset: Path,
    options: str,
    message: str,
    capsys,  # noqa: ANN001
) -> None:
    from autotag.cli.main import main

    runs = tmpfs(options) / "runs"
    with pytest.raises(RunError, match=message):
        manager.launch(tiny_config(small_csv_dataset), runs_dir=runs)
    assert main(["fit", "--data", str(small_csv_dataset), "--model", "tiny", "--runs-dir", str(runs)]) == 2
    assert message.split(":")[0] in capsys.readouterr().err


def test_eta_counts_training_pace_not_the_time_spent_on_setup(tmp_path: Path) -> None:
    """200 of 1,000 steps in 20 s of training, after 60 s of building the cache: 80 s left."""
    now = time.time()
    status = {
        "started": now - 80,
        "train_clock": [now - 20, 0],
        "updated": now,
        "global_step": 200,
        "steps_per_epoch": 100,
        "max_epochs": 10,
        "phase": "training",
    }

    def eta(state: RunState, fields: dict) -> float | None:
        info = manager.RunInfo(tmp_path, state, record_from_json(RunStatus, fields, "status.json"))
        return summarize(info)["ETA (s)"]

    assert eta(RunState.RUNNING, status) == pytest.approx(80, abs=1)
    early = {**status, "global_step": 5}  # the first steps pay for warm-up: no estimate yet
    assert eta(RunState.RUNNING, early) is None
    testing = {**status, "phase": "testing"}  # early stopping ended training before max_epochs
    assert eta(RunState.RUNNING, testing) is None
    assert eta(RunState.COMPLETED, status) is None
