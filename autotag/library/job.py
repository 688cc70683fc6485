"""Tagging a library as a background job, like a run: started from the Library page, stopped, resumed.

    <out>.tagging/status.json    state, pid, files done of those to do, the counts, the ETA's clock, error
    <out>.tagging/request.json   what is tagged: the run, folders and files, formats, threshold, owner
    <out>.tagging/tag.log        the background process's output

The folder sits beside the library (`<out>` is `lib.sqlite`, `lib.csv` or `lib.jsonl`), as
SQLite's own `-wal` file does: whoever opens a library finds its job. The process
(`python -m autotag.library.background OUT`) does what `tag --out OUT` does in a terminal
(`tag.tag_into`); Stop is SIGTERM, after which it writes no more rows and ends "stopped";
Resume starts it again on the same request, skipping the files the library holds (`--resume`).
Nothing here imports torch: the page shows a job and starts one without it.
"""

from __future__ import annotations

import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from autotag.access import AccessDenied, Actor, check, record
from autotag.errors import AutotagError, UsageError
from autotag.library import MAX_WORKERS
from autotag.library.scan import FORMATS, check_inputs, parse_formats
from autotag.library.store import FORMATS as LIBRARY_FORMATS
from autotag.runs import manager
from autotag.store.files import Count, JsonFileError, Pid, Timestamp, file_lock, load_json, write_json_atomic
from autotag.store.job import RunState, StatusFile, derive_job_state
from autotag.store.procs import process_start_time, send_signal
from autotag.store.run_folder import RunFolder
from autotag.text import one_line, shown

MODULE = "autotag.library.background"
#: The job folder's suffix after the library's name.
SUFFIX = ".tagging"


class LibraryJobError(AutotagError):
    """A library job that cannot be started, stopped or resumed; the message says why."""


@dataclass
class JobStatus:
    """status.json of a library job. `done` and `to_do` count files tagged or failed in this
    attempt and those it has to tag (the library's files it skips when resuming are in neither)."""

    state: RunState = RunState.UNKNOWN
    phase: str | None = None  # "starting", "loading the model, counting the files", "tagging"
    pid: Pid | None = None
    pid_start: Timestamp | None = None
    started: Timestamp | None = None  # when this attempt began tagging: the clock of its ETA
    done: Count = 0
    to_do: Count | None = None
    tagged: Count = 0
    skipped: Count = 0
    failed: Count = 0
    failures: list[str] = field(default_factory=list)  # the first few "path: why"
    updated: Timestamp | None = None
    ended: Timestamp | None = None
    error: str | None = None

    def eta_s(self, now: float | None = None) -> float | None:
        """Seconds left at this attempt's pace; None before its first file."""
        if self.started is None or not self.to_do or not self.done:
            return None
        return ((now or time.time()) - self.started) / self.done * max(0, self.to_do - self.done)


@dataclass(frozen=True)
class TagRequest:
    """What a job tags: the same as `tag --run RUN INPUTS --recursive --out OUT`."""

    run: str
    inputs: list[str]
    formats: list[str] = field(default_factory=lambda: list(FORMATS))
    threshold: float | None = None
    workers: int | None = None  # decoder processes (None: `tag.default_workers()`)
    owner: str | None = None


_REQUEST = TypeAdapter(TagRequest)


class LibraryJob:
    """The files of the job that tags the library `out` (see the module's docstring)."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.path = out.with_name(out.name + SUFFIX)

    @property
    def _status(self) -> StatusFile[JobStatus]:
        return StatusFile.of(self.path, JobStatus)

    @property
    def request_file(self) -> Path:
        return self.path / "request.json"

    @property
    def log(self) -> Path:
        return self.path / "tag.log"

    def exists(self) -> bool:
        return self.path.is_dir()

    def read_status(self) -> JobStatus:
        return self._status.read()

    def write_status(self, **changes: Any) -> JobStatus:
        return self._status.write(**changes)

    def read_request(self) -> TagRequest:
        """The request as `start` wrote it.

        Raises:
            LibraryJobError: request.json is missing, damaged or not a request.
        """
        try:
            return _REQUEST.validate_python(load_json(self.request_file))
        except (OSError, JsonFileError, ValidationError) as exc:
            why = "missing" if isinstance(exc, FileNotFoundError) else one_line(str(exc), 120)
            raise LibraryJobError(f"{self.request_file.name} of {self.out.name}'s job: {why}") from None

    def state(self) -> RunState:
        """The job's state; "crashed" (recorded) when its process is gone without a final one."""
        return derive_job_state(
            self.read_status,
            lambda: self.write_status(
                state=RunState.CRASHED, ended=time.time(), error="the tagging process ended without a state"
            ),
        )


def check_request(out: Path, request: TagRequest, resume: bool, runs_dir: Path) -> tuple[Path, list[Path]]:
    """The run's folder and the inputs (absolute), when `request` can be tagged into `out` now; else why not (before
    anything is written, as `tag --out` checks it).

    Raises:
        UsageError: an input that is missing or neither a folder nor a file, an unknown format,
            a bad library name, an existing library without `resume` or a missing one with it.
        RunError: no such run.
        LibraryJobError: the run cannot tag (training, failed, no checkpoint), or a job is
            already tagging into `out`.
    """
    if LibraryJob(out).state().active:
        raise LibraryJobError(f"{out.name} is being tagged already: stop that first")
    inputs = check_inputs(request.inputs, recursive=True)
    if not inputs:
        raise UsageError("give a folder or file to tag")
    parse_formats(",".join(request.formats))
    if request.workers is not None and not 1 <= request.workers <= MAX_WORKERS:
        raise UsageError(f"workers must be 1 to {MAX_WORKERS}, got {request.workers}")
    if LIBRARY_FORMATS.get(out.suffix.lower()) is None:
        suffixes = ", ".join(s for s in LIBRARY_FORMATS if s)
        raise UsageError(f"{shown(out.name)}: a library file's name ends in {suffixes} (or has no suffix: SQLite)")
    if out.is_dir() or not out.parent.is_dir():
        raise UsageError(f"{out} is a folder" if out.is_dir() else f"there is no folder {out.parent}")
    if out.exists() and not resume:
        raise UsageError(f"{out.name} exists already: give a new library file")
    if resume and not out.exists():
        raise UsageError(f"{out.name} does not exist yet: start it, there is nothing to resume")
    run = RunFolder(manager.resolve_run(request.run, runs_dir))
    problem = run.not_a_run()
    if problem:
        raise LibraryJobError(problem)
    state = manager.derive_state(run.path)
    if state.active or state in (RunState.FAILED, RunState.QUEUED):
        raise LibraryJobError(f"run {run.name} is {state}: tag with a run that has ended with a model")
    if not run.checkpoints.is_dir():
        raise LibraryJobError(f"run {run.name} has no checkpoint")
    return run.path, inputs


def start(out: Path, request: TagRequest, *, resume: bool, runs_dir: Path, actor: Actor | None = None) -> None:
    """Start tagging `request` into the library `out` in the background.

    Raises:
        UsageError, LibraryJobError: the request is refused (`check_request`).
        AccessDenied: `actor` may not start library jobs (or resume another's).
    """
    try:
        _start(out, request, resume, runs_dir, actor)
    except (AccessDenied, AutotagError):  # said already (UsageError is a ValueError, AccessDenied an OSError)
        raise
    except (OSError, ValueError) as exc:  # a name no file system takes (a NUL, too long), a folder not writable
        why = one_line(str(exc.strerror if isinstance(exc, OSError) and exc.strerror else exc), 120)
        raise LibraryJobError(f"cannot tag into {shown(str(out))}: {why}") from None


def _start(out: Path, request: TagRequest, resume: bool, runs_dir: Path, actor: Actor | None) -> None:
    job = LibraryJob(out)
    owner = job.read_request().owner if resume and job.request_file.exists() else None
    actor = check(actor, "library", out, owner, runs_dir)
    run, inputs = check_request(out, request, resume, runs_dir)
    job.path.mkdir(exist_ok=True)
    with file_lock(job.path / ".start.lock"):  # a double click, two viewers: one process
        if job.state().active:
            raise LibraryJobError(f"{out.name} is being tagged already: stop that first")
        fresh = TagRequest(str(run), [str(i) for i in inputs], **_options(request, actor))
        write_json_atomic(job.request_file, asdict(fresh))
        job.write_status(
            **{**asdict(JobStatus()), "state": RunState.STARTING, "phase": "starting", "updated": time.time()}
        )
    cmd = [sys.executable, "-m", MODULE, str(out)] + (["--resume"] if resume else [])
    pid = manager.start_process(cmd, job.log)
    job.write_status(pid=pid, pid_start=process_start_time(pid))
    record(runs_dir, actor, "library", out)


def _options(request: TagRequest, actor: Actor) -> dict[str, Any]:
    return {
        "formats": list(request.formats),
        "threshold": request.threshold,
        "workers": request.workers,
        "owner": request.owner or actor.name,
    }


def resume(out: Path, runs_dir: Path, actor: Actor | None = None) -> None:
    """Start the job of `out` again on its request, skipping the files its library holds.

    Raises:
        LibraryJobError: no job was started for `out`, or it is running.
        UsageError, AccessDenied: as `start`.
    """
    job = LibraryJob(out)
    if not job.exists():
        raise LibraryJobError(f"{out.name} was not tagged by a background job: tag it again from a terminal")
    start(out, job.read_request(), resume=out.exists(), runs_dir=runs_dir, actor=actor)


def stop(out: Path, runs_dir: Path, actor: Actor | None = None) -> bool:
    """Ask the job to stop (the rows written stay); whether one was running.

    Raises:
        AccessDenied: `actor` may not stop this job (a job whose request.json is damaged has
            no owner: admins and the machine's user may stop it).
    """
    job = LibraryJob(out)
    if not job.exists():
        return False
    try:
        owner = job.read_request().owner
    except LibraryJobError:
        owner = None
    actor = check(actor, "library", out, owner, runs_dir)
    status = job.read_status()
    if not job.state().active or status.pid is None:
        return False
    send_signal(status.pid, signal.SIGTERM, group=False)
    record(runs_dir, actor, "library stop", out)
    return True
