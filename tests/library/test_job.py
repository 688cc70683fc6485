"""A library tagged by a background job (the Library page's Start): progress in its status,
Stop keeps the rows, Resume tags the rest and none twice, a killed process is "crashed" and
resumable, a model that does not load ends it "failed", refusals write nothing."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import time
from contextlib import closing
from pathlib import Path

import pytest

from autotag.access import AccessDenied, Actor
from autotag.errors import UsageError
from autotag.library import job
from autotag.library.job import LibraryJob, LibraryJobError, TagRequest
from autotag.store.job import RunState
from autotag.store.run_folder import RunError
from tests.conftest import paused

pytestmark = pytest.mark.slow


def _rows(out: Path) -> list[tuple[int, str, str]]:
    """(id, path, status) of each row, in path order; none while the library does not exist."""
    if not out.exists():
        return []
    with closing(sqlite3.connect(f"file:{out}?mode=ro", uri=True)) as db:
        return db.execute("SELECT id, path, status FROM files ORDER BY path").fetchall()


def _ended(tagging: LibraryJob, timeout: float = 180) -> RunState:
    deadline = time.monotonic() + timeout
    while (state := tagging.state()).active:
        assert time.monotonic() < deadline, tagging.log.read_text()
        time.sleep(0.1)
    return state


@pytest.fixture
def folder(demo_dataset: Path, tmp_path: Path) -> Path:
    """40 clips to tag (one decoder; the tests hold the job still to stop it halfway)."""
    folder = tmp_path / "music"
    folder.mkdir()
    for clip in sorted((demo_dataset / "audio").glob("*.wav"))[:40]:
        shutil.copy(clip, folder / clip.name)
    return folder


@pytest.fixture
def run(trained_run: Path, tmp_path: Path) -> Path:
    """The shared trained run, copied into a runs folder of the test's own (its audit log is the test's)."""
    return shutil.copytree(trained_run, tmp_path / "runs" / run.name)


def _request(run: Path, folder: Path) -> TagRequest:
    return TagRequest(run.name, [str(folder)], workers=1)


def _running(tagging: LibraryJob) -> None:
    """Wait until the job's process runs (a SIGTERM before Python set its handler would kill it)."""
    deadline = time.monotonic() + 180  # torch's import, on a busy machine
    while tagging.read_status().state != RunState.RUNNING:
        assert time.monotonic() < deadline, tagging.log.read_text()
        time.sleep(0.02)


def _stop_after_three(out: Path, tagging: LibraryJob, runs_dir: Path) -> None:
    deadline = time.monotonic() + 120
    while len(_rows(out)) < 3:
        assert tagging.state().active and time.monotonic() < deadline, tagging.log.read_text()
        time.sleep(0.02)
    with paused(tagging.read_status().pid):  # Stop lands before the last file, however fast the machine
        assert tagging.state().active and len(_rows(out)) < 40, "the job ended before the test could stop it"
        assert job.stop(out, runs_dir)


def test_a_job_tags_in_the_background_stops_and_resumes_without_tagging_a_file_twice(
    run: Path, folder: Path, tmp_path: Path
) -> None:
    out, runs_dir = tmp_path / "lib.sqlite", run.parent
    tagging = LibraryJob(out)
    job.start(out, _request(run, folder), resume=False, runs_dir=runs_dir)
    _running(tagging)
    _stop_after_three(out, tagging, runs_dir)
    assert _ended(tagging) == RunState.STOPPED
    first = _rows(out)
    status = tagging.read_status()
    assert 3 <= len(first) < 40 and {s for _, _, s in first} == {"tagged"}, "stopped halfway, every row whole"
    assert (status.tagged, status.done, status.to_do, status.failed) == (len(first), len(first), 40, 0)
    assert status.started is not None and status.ended is not None and status.pid is not None

    job.resume(out, runs_dir)
    assert _ended(tagging) == RunState.COMPLETED
    rows = _rows(out)
    assert len(rows) == 40 and len({p for _, p, _ in rows}) == 40
    ids = {p: i for i, p, _ in rows}
    assert all(ids[p] == i for i, p, _ in first), "rows of the first attempt untouched: not tagged again"
    status = tagging.read_status()
    assert (status.tagged, status.skipped, status.done, status.to_do) == (
        40 - len(first),
        len(first),
        40 - len(first),
        40 - len(first),
    )
    assert status.error is None and status.phase is None
    request = json.loads(tagging.request_file.read_text())
    assert request["run"] == str(run) and request["inputs"] == [str(folder)] and request["owner"].startswith("os:")
    actions = [json.loads(line)["action"] for line in (runs_dir / "audit.jsonl").read_text().splitlines()]
    assert actions[-3:] == ["library", "library stop", "library"]
    assert "autotag: completed: tagged" in tagging.log.read_text()


def test_a_killed_job_is_crashed_and_resumes(run: Path, folder: Path, tmp_path: Path) -> None:
    out, runs_dir = tmp_path / "lib.sqlite", run.parent
    tagging = LibraryJob(out)
    job.start(out, _request(run, folder), resume=False, runs_dir=runs_dir)
    deadline = time.monotonic() + 120
    while len(_rows(out)) < 3:
        assert time.monotonic() < deadline, tagging.log.read_text()
        time.sleep(0.02)
    pid = tagging.read_status().pid
    with paused(pid):
        assert tagging.state().active, "the job ended before the test could kill it"
        os.kill(pid, signal.SIGKILL)
    assert _ended(tagging, 30) == RunState.CRASHED
    assert tagging.read_status().error == "the tagging process ended without a state"
    job.resume(out, runs_dir)
    assert _ended(tagging) == RunState.COMPLETED
    assert len(_rows(out)) == 40


def test_a_model_that_does_not_load_ends_the_job_failed_with_its_reason(
    run: Path, folder: Path, tmp_path: Path
) -> None:
    runs_dir = run.parent
    for checkpoint in (run / "checkpoints").iterdir():
        checkpoint.write_bytes(b"not a checkpoint")
    out = tmp_path / "lib.sqlite"
    tagging = LibraryJob(out)
    job.start(out, _request(run, folder), resume=False, runs_dir=runs_dir)
    assert _ended(tagging) == RunState.FAILED
    status = tagging.read_status()
    assert status.error and "checkpoint" in status.error and "\n" not in status.error
    assert not out.exists()


def test_refused_starts_say_why_and_write_nothing(run: Path, folder: Path, tmp_path: Path) -> None:
    out, runs_dir = tmp_path / "lib.sqlite", run.parent
    good = _request(run, folder)
    refusals = {
        "no such folder": (TagRequest(run.name, [str(tmp_path / "nowhere")]), out, False, UsageError),
        "no input": (TagRequest(run.name, []), out, False, UsageError),
        "unknown format": (TagRequest(run.name, [str(folder)], ["aiff"]), out, False, UsageError),
        "workers": (TagRequest(run.name, [str(folder)], workers=0), out, False, UsageError),
        "bad suffix": (good, tmp_path / "lib.txt", False, UsageError),
        "no such run": (TagRequest("nope", [str(folder)]), out, False, RunError),
        "nothing to resume": (good, out, True, UsageError),
        "a NUL in the library's name": (good, tmp_path / "a\x00b.sqlite", False, LibraryJobError),
        "a NUL in a folder's": (TagRequest(run.name, [f"{folder}\x00"]), out, False, LibraryJobError),
        "a name too long": (good, tmp_path / f"{'x' * 300}.sqlite", False, LibraryJobError),
        "a folder nothing can be written in": (good, Path("/proc/lib.sqlite"), False, LibraryJobError),
    }
    for why, (request, target, resume, error) in refusals.items():
        with pytest.raises(error):
            job.start(target, request, resume=resume, runs_dir=runs_dir)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["music", "runs"], why

    viewer = Actor("v@example.org", "viewer", "dashboard")
    with pytest.raises(AccessDenied, match="viewers may look and tag"):
        job.start(out, good, resume=False, runs_dir=runs_dir, actor=viewer)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["music", "runs"]
    with pytest.raises(LibraryJobError, match="not tagged by a background job"):
        job.resume(out, runs_dir)

    out.write_bytes(b"")  # a file there already: tagging it anew would lose it
    with pytest.raises(UsageError, match="exists"):
        job.start(out, good, resume=False, runs_dir=runs_dir)
    assert not LibraryJob(out).exists()


def test_a_second_start_while_one_runs_is_refused_and_a_trainer_manages_only_its_own(
    run: Path, folder: Path, tmp_path: Path
) -> None:
    out, runs_dir = tmp_path / "lib.sqlite", run.parent
    tina = Actor("tina@example.org", "trainer", "dashboard")
    job.start(out, _request(run, folder), resume=False, runs_dir=runs_dir, actor=tina)
    tagging = LibraryJob(out)
    _running(tagging)
    try:
        with paused(tagging.read_status().pid):  # still running whatever the machine's speed
            with pytest.raises(LibraryJobError, match="being tagged already"):
                job.start(out, _request(run, folder), resume=True, runs_dir=runs_dir)
            with pytest.raises(AccessDenied, match="tina@example.org"):
                job.stop(out, runs_dir, Actor("tom@example.org", "trainer", "dashboard"))
            assert tagging.state().active
            tagging.request_file.write_text("{not json")  # damaged: no owner, but the machine's user stops it
            assert job.stop(out, runs_dir)
    finally:
        job.stop(out, runs_dir)
    assert _ended(tagging) == RunState.STOPPED
