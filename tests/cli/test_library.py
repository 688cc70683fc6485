"""`tag --out LIB --background` and `library status|stop|resume LIB`: the Library page's
background tagging from a terminal."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from autotag.cli.main import main
from autotag.library.job import LibraryJob
from autotag.store.job import RunState

pytestmark = pytest.mark.slow


def _cli(capsys: pytest.CaptureFixture, *args: str) -> subprocess.CompletedProcess:
    """The command in this process (the library commands import no torch: a second's start in a
    process of its own would let the job finish before the test looks)."""
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, out, err)


def test_a_background_tag_is_followed_stopped_and_resumed_from_a_terminal(
    trained_run: Path,
    demo_dataset: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runs = tmp_path / "runs"
    run = shutil.copytree(trained_run, runs / trained_run.name)
    music = tmp_path / "music"
    clips = sorted((demo_dataset / "audio").glob("*.wav"))[:40]
    for part in range(5):  # 200 files (links to 40): seconds of work, so the test sees it run and stops it
        (music / str(part)).mkdir(parents=True)
        for clip in clips:
            os.link(clip, music / str(part) / clip.name)
    out = tmp_path / "lib.sqlite"
    tag = ["tag", "--run", run.name, "--runs-dir", str(runs), "music", "-r", "--out", "lib.sqlite", "--workers", "1"]

    monkeypatch.chdir(tmp_path)
    started = _cli(capsys, *tag, "--background")  # relative paths: the job gets them absolute
    assert started.returncode == 0, started.stderr
    assert started.stdout.strip() == str(tmp_path / "lib.sqlite.tagging")
    tagging = LibraryJob(out)
    assert tagging.read_request().inputs == [str(music)] and tagging.read_request().workers == 1
    status = _cli(capsys, "library", "status", str(out), "--runs-dir", str(runs))
    assert re.fullmatch(
        r"lib\.sqlite: (starting, starting|running, loading the model, counting the files)\n", status.stdout
    )
    deadline = time.monotonic() + 120
    while tagging.read_status().phase != "tagging" or tagging.read_status().done < 3:
        assert tagging.state().active and time.monotonic() < deadline, tagging.log.read_text()
        time.sleep(0.05)
    status = _cli(capsys, "library", "status", str(out), "--runs-dir", str(runs))
    assert re.fullmatch(r"lib\.sqlite: running, \d+ of 200 files(, .* left)?\n", status.stdout), status

    again = _cli(capsys, *tag, "--background", "--resume")
    assert (
        again.returncode == 2
        and again.stderr.strip() == "autotag: error: lib.sqlite is being tagged already: stop that first"
    )

    stop = _cli(capsys, "library", "stop", str(out), "--runs-dir", str(runs))
    assert stop.returncode == 0, stop.stderr
    while tagging.state().active:
        assert time.monotonic() < deadline, tagging.log.read_text()
        time.sleep(0.05)
    assert tagging.state() == RunState.STOPPED
    line = _cli(capsys, "library", "status", str(out)).stdout
    assert re.fullmatch(r"lib\.sqlite: stopped: tagged \d+, skipped 0, failed 0\n", line), line
    not_running = _cli(capsys, "library", "stop", str(out))
    assert not_running.returncode == 0 and not_running.stderr.strip() == (
        "autotag: lib.sqlite is not being tagged (it is stopped): nothing to stop"
    )

    assert _cli(capsys, "library", "resume", str(out), "--runs-dir", str(runs)).returncode == 0
    while tagging.state().active:
        assert time.monotonic() < deadline + 120, tagging.log.read_text()
        time.sleep(0.1)
    tagged = int(re.search(r"tagged (\d+)", line)[1])
    assert _cli(capsys, "library", "status", str(out)).stdout == (
        f"lib.sqlite: completed: tagged {200 - tagged}, skipped {tagged}, failed 0\n"
    )


def test_library_commands_on_a_file_without_a_job_exit_2_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    for action in ("status", "stop", "resume"):
        done = _cli(capsys, "library", action, str(tmp_path / "lib.sqlite"))
        assert done.returncode == 2 and done.stderr == (
            "autotag: error: lib.sqlite has no background job (lib.sqlite.tagging is not there)\n"
        ), done.stderr
    assert list(tmp_path.iterdir()) == []
