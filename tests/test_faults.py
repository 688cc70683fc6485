"""Fault injection for runs and checkpoints: kills, hangs, crowds and torn files."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import torch

from autotag import manager
from autotag.ckpt_io import AtomicCheckpointIO
from autotag.procs import is_alive, process_start_time
from autotag.runs import create_run, read_status, sweep_orphans, write_status
from tests.conftest import tiny_config

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
    write_status(run, state="running", pid=proc.pid, pid_start=process_start_time(proc.pid))
    started = time.monotonic()
    assert manager.stop(run, grace=1.0) == "stopped"
    assert time.monotonic() - started < 10
    status = read_status(run)
    assert status["forced"] is True
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
        assert states.count("queued") == 8 and len([s for s in states if s in manager.ACTIVE_STATES]) == 2
    finally:
        for run in made:
            if manager.derive_state(run) in (*manager.ACTIVE_STATES, "queued"):
                manager.stop(run, grace=5)
    assert all(read_status(r)["state"] == "stopped" for r in made)


def test_checkpoint_writes_are_atomic_and_orphans_are_swept(tmp_path: Path) -> None:
    io = AtomicCheckpointIO()
    target = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"state_dict": {"w": torch.ones(3)}}, target)
    assert torch.load(target, weights_only=True)["state_dict"]["w"].sum() == 3
    assert [p.name for p in target.parent.iterdir()] == ["last.ckpt"]

    class Boom:
        def __reduce__(self):  # noqa: ANN204 - torch.save fails halfway through pickling
            raise RuntimeError("disk went away")

    with pytest.raises(RuntimeError, match="disk went away"):
        io.save_checkpoint({"state_dict": {"w": torch.zeros(3)}, "x": Boom()}, target)
    assert torch.load(target, weights_only=True)["state_dict"]["w"].sum() == 3  # old file intact
    assert [p.name for p in target.parent.iterdir()] == ["last.ckpt"]

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    orphan = target.parent / f".last.ckpt.tmp-{int(dead.stdout)}"
    orphan.write_bytes(b"half a checkpoint")
    live = target.parent / f".best.ckpt.tmp-{os.getpid()}"
    live.write_bytes(b"being written")
    assert sweep_orphans(tmp_path) == [orphan]
    assert live.exists() and not orphan.exists()
