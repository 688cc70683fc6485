"""The Runs page's shared reads: N viewers cost one read per interval, and one figure per change."""

from __future__ import annotations

import functools
import threading
import time
from pathlib import Path

import pytest
from torch.utils.tensorboard import SummaryWriter

from autotag.runs.curves import CurveReader
from autotag.store.job import RunState
from autotag.store.run_folder import RunFolder, create_run
from autotag.ui.live import INTERVALS_S, MIN_INTERVAL_S, LiveRuns, live_runs, refresh_interval
from tests.conftest import tiny_config


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _log(run: Path, steps: range) -> None:
    writer = SummaryWriter(str(RunFolder(run).tb))
    for step in steps:
        writer.add_scalar("train_loss", 1.0 / (step + 1), step)
    writer.close()


def test_many_viewers_within_an_interval_cost_one_read(tmp_path: Path, small_csv_dataset: Path) -> None:
    runs_dir = tmp_path / "runs"
    run = create_run(tiny_config(small_csv_dataset), runs_dir, "watched")
    _log(run, range(10))
    clock = Clock()
    live = LiveRuns(runs_dir, clock)

    def viewer() -> None:
        snap = live.snapshot()
        readers = live.readers(snap.runs)
        live.figure(readers, 0.6)

    threads = [threading.Thread(target=viewer) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert live.reads == {"runs": 1, "curves": 1, "figures": 1}
    first = live.snapshot()
    figure = live.figure(live.readers(first.runs), 0.6)
    assert figure.data[0].x[-1] == 9

    clock.now += MIN_INTERVAL_S  # time passes, nothing is written: read again, the same runs, the same figure
    again = live.snapshot()
    assert live.reads["runs"] == 2 and again.runs == first.runs
    assert live.figure(live.readers(again.runs), 0.6) is figure and live.reads["figures"] == 1

    _log(run, range(10, 20))  # the trainer writes: the next read after the interval sees it
    assert live.figure(live.readers(again.runs), 0.6) is figure
    clock.now += MIN_INTERVAL_S
    newer = live.figure(live.readers(live.snapshot().runs), 0.6)
    assert newer is not figure and newer.data[0].x[-1] == 19
    assert live.figure(live.readers(live.snapshot().runs), 0.3) is not newer  # another smoothing, its own figure

    RunFolder(run).write_status(state=RunState.RUNNING, pid=None)
    assert live.snapshot().runs[0].state is RunState.QUEUED  # within the interval: the shared listing
    assert live.snapshot(max_age=0).runs[0].state is RunState.RUNNING  # a user's action reads at once


def test_a_deleted_run_leaves_no_reader_behind(tmp_path: Path, small_csv_dataset: Path) -> None:
    import shutil

    runs_dir = tmp_path / "runs"
    run = create_run(tiny_config(small_csv_dataset), runs_dir, "gone")
    live = LiveRuns(runs_dir, Clock())
    live.readers(live.snapshot().runs)
    assert len(live._readers) == 1
    shutil.rmtree(run)
    assert live.snapshot(max_age=0).runs == () and not live._readers


def test_pages_look_again_soon_only_while_a_run_they_show_trains(tmp_path: Path, small_csv_dataset: Path) -> None:
    runs_dir = tmp_path / "runs"
    shown = create_run(tiny_config(small_csv_dataset), runs_dir, "shown")
    other = create_run(tiny_config(small_csv_dataset), runs_dir, "other")
    live = LiveRuns(runs_dir, Clock())
    for run in (shown, other):
        RunFolder(run).write_status(state=RunState.COMPLETED)
    assert refresh_interval(live.snapshot(max_age=0), [shown.name]) == INTERVALS_S[2]
    RunFolder(other).write_status(state=RunState.QUEUED)
    assert refresh_interval(live.snapshot(max_age=0), [shown.name]) == INTERVALS_S[1]
    RunFolder(shown).write_status(state=RunState.QUEUED)
    assert refresh_interval(live.snapshot(max_age=0), [shown.name]) == INTERVALS_S[0]


def test_one_shared_reader_per_runs_folder(tmp_path: Path) -> None:
    (tmp_path / "runs").mkdir()
    assert live_runs(tmp_path / "runs") is live_runs(tmp_path / "x" / ".." / "runs")


def test_a_page_showing_a_run_with_a_200_mb_hole_in_its_event_file_is_never_held_up(
    tmp_path: Path, small_csv_dataset: Path
) -> None:
    """Every viewer of a run waits on its one reader: each call reads a bounded piece of the
    hole, the healthy run beside it is read in full at once, and the damaged run's records
    after the hole arrive a few calls later."""
    runs_dir = tmp_path / "runs"
    healthy = create_run(tiny_config(small_csv_dataset), runs_dir, "healthy")
    damaged = create_run(tiny_config(small_csv_dataset), runs_dir, "damaged")
    _log(healthy, range(10))
    _log(damaged, range(10))
    (event_file,) = RunFolder(damaged).tb.glob("events.out.tfevents.*")
    data = event_file.read_bytes()
    with event_file.open("r+b") as fh:
        fh.truncate(len(data) + (200 << 20))  # sparse: no bytes on disk
        fh.seek(0, 2)
        fh.write(data)
    clock = Clock()
    live = LiveRuns(runs_dir, clock)
    runs = live.snapshot().runs
    calls = 0
    while calls < 5000:  # at least 64 KiB a call, so it ends; it takes a handful
        start = time.thread_time()
        readers = live.readers(runs)
        spent = time.thread_time() - start
        assert spent < 2.0, f"one page's read took {spent:.1f} s of CPU"
        calls += 1
        assert readers[healthy.name].get("train_loss").steps == list(range(10))
        if readers[damaged.name].caught_up:
            break
        clock.now += MIN_INTERVAL_S
    assert live.reads["curves"] == 2 * calls
    assert readers[damaged.name].points == 20 and len(readers[damaged.name].problems) == 1


def test_a_finished_run_still_being_read_is_looked_at_again_at_once(
    tmp_path: Path, small_csv_dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refresh reads for a bounded time: until the curve is whole, the page comes back every second."""
    from autotag.ui import live as live_module

    monkeypatch.setattr(live_module, "CurveReader", functools.partial(CurveReader, budget_s=0))  # a piece a refresh
    runs_dir = tmp_path / "runs"
    run = create_run(tiny_config(small_csv_dataset), runs_dir, "long")
    RunFolder(run).write_status(state=RunState.COMPLETED)
    _log(run, range(10))
    (event_file,) = RunFolder(run).tb.glob("events.out.tfevents.*")
    data = event_file.read_bytes()
    with event_file.open("r+b") as fh:
        fh.truncate(len(data) + (2 << 20))
        fh.seek(0, 2)
        fh.write(data)
    live = LiveRuns(runs_dir, Clock())
    snapshot = live.snapshot()
    readers = live.readers(snapshot.runs)
    assert not readers[run.name].caught_up
    assert refresh_interval(snapshot, [run.name], readers) == INTERVALS_S[0]
    while not readers[run.name].caught_up:
        readers[run.name].refresh()
    assert refresh_interval(snapshot, [run.name], readers) == INTERVALS_S[2]
