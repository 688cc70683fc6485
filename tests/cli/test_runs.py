"""`python -m autotag runs ...`: listing only reads, run names and paths work alike, pipes close quietly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from autotag.cli.main import main
from autotag.config import make_config
from autotag.runs import manager
from autotag.store.procs import process_start_time
from autotag.store.run_folder import RunFolder, create_run


def _queued_run(runs: Path, data: Path) -> Path:
    return create_run(make_config(data=str(data), model="tiny"), runs)


def test_listing_changes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    missing = tmp_path / "no-runs-here"
    assert main(["runs", "list", "--runs-dir", str(missing)]) == 0
    assert not missing.exists()  # no folder, no lock file

    runs = tmp_path / "runs"
    run = _queued_run(runs, tmp_path)
    before = sorted(p.name for p in runs.iterdir())
    assert main(["runs", "list", "--runs-dir", str(runs)]) == 0
    out, err = capsys.readouterr()
    assert run.name in out and "queued" in out
    assert "python -m autotag runs schedule" in err  # says how to start it, does not start it
    assert RunFolder(run).read_status().state == "queued" and RunFolder(run).read_status().pid is None
    assert sorted(p.name for p in runs.iterdir()) == before


def test_schedule_starts_queued_runs_only_when_a_slot_is_free(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    started: list[Path] = []
    monkeypatch.setattr(manager, "_spawn", lambda run, resume_from=None: started.append(run))
    runs = tmp_path / "runs"
    busy = _queued_run(runs, tmp_path)  # stands for a training run: this live process is its trainer
    RunFolder(busy).write_status(state="running", pid=os.getpid(), pid_start=process_start_time(os.getpid()))
    waiting = _queued_run(runs, tmp_path)
    assert main(["runs", "schedule", "--runs-dir", str(runs)]) == 0
    assert started == [] and "no queued run can start now" in capsys.readouterr().err
    RunFolder(busy).write_status(state="completed")
    assert main(["runs", "--runs-dir", str(runs), "schedule"]) == 0
    assert started == [waiting] and f"{waiting.name}: started" in capsys.readouterr().out


def test_runs_dir_before_or_after_the_subcommand_and_names_or_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    runs = tmp_path / "elsewhere"
    run = _queued_run(runs, tmp_path)
    monkeypatch.chdir(tmp_path)
    shown = []
    for args in (
        ["runs", "--runs-dir", "elsewhere", "show", run.name],
        ["runs", "show", "--runs-dir", "elsewhere", run.name],
        ["runs", "show", run.name, "--runs-dir", str(runs)],
        ["runs", "show", f"elsewhere/{run.name}"],
        ["runs", "show", str(run)],
    ):
        assert main(args) == 0, args
        shown.append(json.loads(capsys.readouterr().out.split("\n}\n")[0] + "}"))
    assert all(s == shown[0] for s in shown) and shown[0]["run"] == str(run)
    assert main(["runs", "show", run.name]) == 2  # not in the default runs folder
    assert f"no run {run.name!r} in the runs folder" in capsys.readouterr().err


def test_a_closed_pipe_ends_the_command_quietly(tmp_path: Path) -> None:
    """`runs show RUN | head`: the reader leaves early; no traceback, the shell's SIGPIPE status."""
    run = _queued_run(tmp_path / "runs", tmp_path)
    RunFolder(run).labels.write_text("[]")
    proc = subprocess.Popen(
        [sys.executable, "-m", "autotag", "runs", "show", str(run)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()  # the reader is gone before anything was written
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141, err
    assert "Traceback" not in err and "BrokenPipeError" not in err and "Exception ignored" not in err, err
