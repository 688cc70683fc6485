"""The pre-warmed trainer: launches forked from it behave like fresh ones, and it never lingers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from autotag.runs import manager, warm
from autotag.runs.warm import WARM_DIR
from autotag.store.procs import is_alive
from autotag.store.run_folder import RunFolder, default_runs_dir
from tests.conftest import tiny_config, wait_for_run

pytestmark = pytest.mark.slow


def _warm_info(runs: Path, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = warm.info(runs)
        if record.get("ready"):
            return record
        time.sleep(0.05)
    raise AssertionError(f"no warm trainer; its log:\n{(runs / WARM_DIR / 'warm.log').read_text()[-3000:]}")


def _parent(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))


@pytest.fixture
def warm_runs(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, dict]]:
    monkeypatch.setenv("AUTOTAG_WARM", "1")
    runs = default_runs_dir()
    manager.warm_up(runs)
    info = _warm_info(runs)
    yield runs, info
    if is_alive(info["pid"], info["pid_start"]):  # ends with this process anyway; do not wait for that
        os.kill(info["pid"], signal.SIGTERM)


def test_launches_fork_from_the_warm_trainer_and_stop_and_resume_as_usual(
    warm_runs: tuple[Path, dict], small_csv_dataset: Path
) -> None:
    runs, info = warm_runs
    run = manager.launch(tiny_config(small_csv_dataset, max_epochs=1000, patience=100))
    status = wait_for_run(run, lambda s: s["state"] == "running" and s.get("epoch", 0) >= 2)
    pid = status["pid"]
    assert _parent(pid) == info["pid"]  # forked, not a new interpreter
    assert os.getsid(pid) == pid  # its own session, so Stop can signal its process group
    assert manager.stop(run) == "stopped"
    stopped_at = RunFolder(run).read_status().global_step

    manager.resume(run)
    status = wait_for_run(run, lambda s: s.get("pid") not in (None, pid) and s.get("global_step", 0) > stopped_at)
    assert _parent(status["pid"]) == info["pid"]
    assert manager.stop(run) == "stopped"
    log = (run / "train.log").read_text()
    assert log.count("training tiny on") == 2 and "resuming from" in log
    assert "Traceback" not in log
    assert "GPU available" in log and "Tip:" not in log  # Lightning's lines, without its advert


def test_a_changed_import_time_setting_starts_a_fresh_trainer(
    warm_runs: tuple[Path, dict], small_csv_dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs, info = warm_runs
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # read when torch is imported: the warm one cannot take it
    run = manager.launch(tiny_config(small_csv_dataset, max_epochs=1000, patience=100))
    status = wait_for_run(run, lambda s: s["state"] == "running" and s.get("pid") is not None)
    assert _parent(status["pid"]) != info["pid"]
    assert manager.stop(run) == "stopped"
    assert RunFolder(run).read_status().state == "stopped"


def test_the_warm_trainer_ends_with_the_dashboard_that_started_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOTAG_WARM", "1")
    runs = default_runs_dir()
    code = f"from autotag.runs import manager; manager.warm_up({str(runs)!r})"  # the owner exits at once
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    info = warm.info(runs)
    deadline = time.monotonic() + 90
    while is_alive(info["pid"], info["pid_start"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not is_alive(info["pid"], info["pid_start"])
