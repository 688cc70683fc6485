"""A robustness report as a job of its own: its files in the run folder, its background process.

    <run>/robustness.json            the finished report (`report.summarize`)
    <run>/robustness/status.json     state, pid, clips done of total, the clock of an ETA, error
    <run>/robustness/progress.npz    the clips scored so far and their request (a stopped report goes on)
    <run>/robustness/request.json    what is being scored: split, perturbations, seed, checkpoint, clips
    <run>/robustness/report.log      the background process's output

The report runs in a process of its own (`python -m autotag.robustness.process RUN ...`, or in
the foreground from the CLI), never in the dashboard's. Stop is SIGTERM: the process
finishes the clip in hand, saves and ends "stopped". Nothing here imports torch, so the
CLI checks a request and the Runs page shows a report's state without it.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError
from typing_extensions import TypedDict  # pydantic reads typing.TypedDict only from Python 3.12

from autotag.access import Actor, check, record
from autotag.audio.perturb import PerturbationError, get, mp3_available
from autotag.config import PUBLISHED_DATA
from autotag.errors import AutotagError
from autotag.paths import absolute
from autotag.runs import manager
from autotag.store.files import Count, Pid, Timestamp, file_lock
from autotag.store.job import RunState, StatusFile, derive_job_state
from autotag.store.procs import process_start_time, send_signal
from autotag.store.run_folder import RunError, RunFolder

MODULE = "autotag.robustness.process"
SPLITS = ("test", "valid", "train")


class RobustnessError(AutotagError):
    """A report that cannot be made or started; the message says why."""


@dataclass
class ReportStatus:
    state: RunState = RunState.UNKNOWN
    split: str | None = None  # the split being (or last) scored
    data: str | None = None  # the data set scored, when not the run's own (a published model's)
    pid: Pid | None = None
    pid_start: Timestamp | None = None
    started: Timestamp | None = None  # the clock of this attempt's ETA (a resume starts a new one)
    done_at_start: Count = 0  # clips already scored when this attempt began
    done: Count = 0
    total: Count | None = None
    updated: Timestamp | None = None
    ended: Timestamp | None = None
    error: str | None = None
    skipped: Count | None = None  # clips that could not be decoded
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per perturbation (clean, decode too)

    def eta_s(self, now: float | None = None) -> float | None:
        """Seconds left at this attempt's pace; None before its first clip."""
        if self.started is None or not self.total or self.done <= self.done_at_start:
            return None
        pace = ((now or time.time()) - self.started) / (self.done - self.done_at_start)
        return pace * (self.total - self.done)


class _TagScores(TypedDict):
    roc_auc: float | None
    pr_auc: float | None
    positives: int


class _Row(TypedDict):
    """One condition's scores in robustness.json (`report.summarize`)."""

    roc_auc_macro: float | None
    pr_auc_macro: float | None
    per_tag: dict[str, _TagScores]


class _PerturbedRow(_Row):
    flipped: float


_CLEAN_ROW = TypeAdapter(_Row)
_PERTURBED_ROWS = TypeAdapter(dict[str, dict[str, _PerturbedRow]])


class ReportFolder:
    """Where a run's robustness report and its job keep their files."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run = RunFolder(Path(run_dir))
        self.path = self.run.robustness

    @property
    def report(self) -> Path:
        return self.run.robustness_report

    @property
    def status_file(self) -> Path:
        return self._status.path

    @property
    def _status(self) -> StatusFile[ReportStatus]:
        return StatusFile.of(self.path, ReportStatus)

    @property
    def progress(self) -> Path:
        return self.path / "progress.npz"

    @property
    def request(self) -> Path:
        return self.path / "request.json"

    @property
    def log(self) -> Path:
        return self.path / "report.log"

    def read_status(self) -> ReportStatus:
        return self._status.read()

    def write_status(self, **changes: Any) -> ReportStatus:
        self.path.mkdir(exist_ok=True)
        return self._status.write(**changes)

    def read_report(self) -> dict[str, Any] | None:
        """robustness.json, or None when there is none or it is not as `report.summarize` writes it
        (a damaged file is like none: the Runs page offers to make the report again)."""
        data = self.run.read_json(self.report)
        if not isinstance(data, dict) or "clean" not in data:
            return None
        perturbed = {k: v for k, v in data.items() if k != "clean"}
        try:
            _CLEAN_ROW.validate_python(data["clean"])
            _PERTURBED_ROWS.validate_python(perturbed)
        except ValidationError:
            return None
        return data

    def state(self) -> RunState:
        """The job's state; "crashed" (recorded) when its process is gone without a final one."""
        return derive_job_state(
            self.read_status,
            lambda: self.write_status(
                state=RunState.CRASHED, ended=time.time(), error="the report's process ended without a state"
            ),
        )


def check_request(
    run_dir: str | Path, split: str, perturbations: Sequence[str], running: bool = True, data: str | None = None
) -> RunFolder:
    """The run, when a report of it can be made; else why not.

    Args:
        running: Also refuse when a report of the run is running (not in that report's own
            process, which `start` checked under its lock).
        data: A data set folder to score instead of the run's own (a published model has none here).

    Raises:
        RobustnessError: not a run, a run still training or one that failed, no checkpoint,
            an unknown split or perturbation, or a report of this run already running.
    """
    run = RunFolder(Path(run_dir))
    problem = run.not_a_run()
    if problem:
        raise RobustnessError(problem)
    for name in perturbations:
        try:
            get(name)
        except PerturbationError as exc:
            raise RobustnessError(str(exc)) from None
    if "mp3" in perturbations and not mp3_available():
        raise RobustnessError("this libsndfile cannot write MP3 (it needs 1.1 or later with LAME): leave mp3 out")

    if split not in SPLITS:
        raise RobustnessError(f"no split {split!r}; one of {', '.join(SPLITS)}")
    if data is not None and not Path(data).is_dir():
        raise RobustnessError(f"no data set folder {data}")
    if data is None and _published(run):
        raise RobustnessError(
            f"run {run.name} is a published model: its data set is not here; give a data set to score (--data DIR)"
        )
    state = manager.derive_state(run.path)
    if state.active:
        raise RobustnessError(f"run {run.name} is {state}: a report needs its final checkpoint, wait for it to end")
    if state in (RunState.FAILED, RunState.CRASHED):
        error = (run.read_status().error or "").splitlines()
        raise RobustnessError(
            f"run {run.name} {state}" + (f" ({error[0]})" if error else "") + ": there is no model to report on"
        )
    from autotag.store.checkpoints import checkpoint_candidates

    try:
        if not checkpoint_candidates(run.path):
            raise RunError("")
    except RunError:
        raise RobustnessError(f"run {run.name} has no checkpoint") from None
    if running and ReportFolder(run.path).state().active:
        raise RobustnessError(f"a robustness report of {run.name} is already running")
    return run


def _published(run: RunFolder) -> bool:
    """Whether the run is a published model (a damaged config.yaml is refused later, by the report, with its reason)."""
    try:
        return str(run.read_config().get("data", "")).startswith(PUBLISHED_DATA)
    except ValueError:
        return False


def start(
    run_dir: Path,
    split: str = "test",
    perturbations: Sequence[str] = (),
    seed: int = 0,
    actor: Actor | None = None,
    data: str | None = None,
) -> None:
    """Start the report in the background (it goes on from a stopped one with the same request).

    Raises:
        RobustnessError: the request is refused (`check_request`).
        AccessDenied: `actor` may not make reports of this run (`autotag.access`).
    """
    data = str(absolute(data)) if data else None  # the report's process runs from another folder
    run = check_request(run_dir, split, perturbations, running=False, data=data)
    actor = check(actor, "robustness", run.path, run.read_status().owner, run.path.parent)
    folder = ReportFolder(run.path)
    folder.path.mkdir(exist_ok=True)
    with file_lock(folder.path / ".start.lock"):  # a double click, two viewers: one process
        check_request(run.path, split, perturbations, data=data)
        folder.write_status(state=RunState.STARTING, pid=None, pid_start=None, error=None, ended=None, data=data)
    cmd = [sys.executable, "-m", MODULE, str(run.path), "--split", split, "--seed", str(seed)]
    cmd += ["--data", data] if data else []
    cmd += [a for name in perturbations for a in ("--perturbations", name)]
    pid = manager.start_process(cmd, folder.log)
    folder.write_status(pid=pid, pid_start=process_start_time(pid))
    record(run.path.parent, actor, "robustness", run.path)


def stop(run_dir: Path, actor: Actor | None = None) -> bool:
    """Ask a running report to stop (it saves the clips it scored); whether one was running.

    Raises:
        AccessDenied: `actor` may not stop reports of this run.
    """
    folder = ReportFolder(run_dir)
    actor = check(actor, "robustness", folder.run.path, folder.run.read_status().owner, folder.run.path.parent)
    status = folder.read_status()
    if not folder.state().active or status.pid is None:
        return False
    send_signal(status.pid, signal.SIGTERM, group=False)
    record(folder.run.path.parent, actor, "robustness stop", folder.run.path)
    return True
