"""Runs that live outside the browser: launch, queue, list, stop, resume, delete.

Training never runs in the caller's process: `launch` starts a detached OS process
(`python -m autotag.runs.process exec RUN`, its own session, output to train.log) from the run's
config.yaml. A run's state is derived from facts on disk and from the OS through psutil (guildai's way):
the trainer writes its own final state; a dead or reused pid without one is "crashed".
At most `max_parallel()` runs train at once; the rest wait as "queued" and are started by
whoever next schedules: a finishing trainer, a launch, stop or resume, the dashboard's
Runs page, or `runs schedule`. Listing runs only reads (and records a crash it sees).
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from autotag.access import Actor, check, record
from autotag.config import TrainConfig
from autotag.paths import absolute
from autotag.runs import warm
from autotag.store.checkpoints import has_checkpoint
from autotag.store.files import JsonFileError, file_lock, load_json
from autotag.store.job import MAX_STATUS_BYTES, RunState, derive_job_state
from autotag.store.procs import group_alive, is_alive, process_start_time, send_signal, start_detached
from autotag.store.run_folder import RunError, RunFolder, RunStatus, check_writable, create_run, runs_folder
from autotag.text import shown
from autotag.training.distributed import check_devices, clean_launch_env, not_here

if TYPE_CHECKING:
    from autotag.training.trial import TrialLink

LOCK_FILE = ".autotag.lock"
PROJECT_ROOT = Path(__file__).resolve().parents[2]  # autotag/runs/manager.py
DEDUPE_WINDOW_S = 30.0
#: How long Stop waits for the rest of a killed trainer's process group to be gone.
GROUP_EXIT_S = 5.0


def max_parallel() -> int:
    """Runs allowed to train at once: `$AUTOTAG_MAX_RUNS`, default 1 (one run saturates a CPU)."""
    try:
        return max(1, int(os.environ.get("AUTOTAG_MAX_RUNS", "1")))
    except ValueError:
        return 1


@contextmanager
def runs_lock(runs_dir: Path) -> Iterator[None]:
    """Exclusive lock over scheduling decisions in one runs folder, across processes."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    with file_lock(runs_dir / LOCK_FILE):
        yield


@dataclass
class RunInfo:
    """One run as the dashboard and `runs list` show it."""

    path: Path
    state: RunState
    status: RunStatus

    @property
    def name(self) -> str:
        return self.path.name


def derive_state(run_dir: Path, status: RunStatus | None = None) -> RunState:
    """The run's state from its status file and its process; persists "crashed" once seen."""
    run = RunFolder(run_dir)

    def crashed() -> None:
        run.write_status(state=RunState.CRASHED, ended=time.time(), error=_crash_reason(run_dir))
        run.sweep_orphans()

    return derive_job_state(run.read_status, crashed, status)


def _crash_reason(run_dir: Path, lines: int = 5) -> str:
    tail = log_tail(run_dir, lines)
    return "the training process ended without a final state" + (f"; last log lines:\n{tail}" if tail else "")


def log_tail(run_dir: Path, lines: int = 40, max_bytes: int = 64_000) -> str:
    """The last `lines` lines of train.log, reading at most `max_bytes` from its end."""
    path = RunFolder(Path(run_dir)).log
    try:
        with path.open("rb") as fh:
            fh.seek(max(0, path.stat().st_size - max_bytes))
            data = fh.read()
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


def list_runs(runs_dir: str | Path | None = None) -> list[RunInfo]:
    """Every run folder (one with a config.yaml), newest first, with its derived state."""
    runs_dir = runs_folder(runs_dir)
    if not runs_dir.is_dir():
        return []
    infos = []
    for path in runs_dir.iterdir():
        run = RunFolder(path)
        if not run.is_run:  # symlinks are not listed: a run is a folder of this runs folder
            continue
        status = run.read_status()
        state = derive_state(path, status)
        if state != status.state:  # derive_state recorded a crash: show what it wrote
            status = run.read_status()
        infos.append(RunInfo(path, state, status))
    # Newest first by creation time: a folder a user named (`fit --run-dir runs/mine`) does
    # not carry the time in its name, and sorting by name put it above every newer run.
    return sorted(infos, key=lambda r: (r.status.created or _mtime(r.path), r.name), reverse=True)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def resolve_run(ref: str | Path, runs_dir: str | Path | None = None) -> Path:
    """A run folder from its name in the runs folder, or from its path (absolute, or relative
    to the current folder), so `runs show NAME` and `tag --run runs/NAME` both work.

    A name (no `/`) is only ever looked up in the runs folder, never in the current folder,
    so a name from a page or a script cannot reach another folder; `.` and `..` are paths.
    Either way the folder must be a run folder autotag made (`RunFolder.not_a_run`): not a
    symlink, with its config.yaml and status.json. Commands refuse rather than guess, the
    way `git clean` does, since some of them (delete) remove what they are given.

    Raises:
        RunError: no run folder by that name or at that path.
    """
    base = runs_folder(runs_dir)
    text = str(ref)
    if not text:
        raise RunError("give a run's name or its folder's path")
    if isinstance(ref, Path) or "/" in text or os.sep in text or text in (".", ".."):
        path = Path(ref).expanduser()
        path = path if path.is_absolute() else Path.cwd() / path  # not resolved yet: a symlink shows
        problem = RunFolder(path).not_a_run()
        if problem:
            raise RunError(problem)
        return path.resolve()
    problem = RunFolder(base / text).not_a_run()
    if problem:
        here = RunFolder(absolute(text))
        hint = f"; for the folder {text} here, give its path: ./{text}" if here.not_a_run() is None else ""
        raise RunError(f"no run {shown(text)} in the runs folder {base}{hint} (or give --runs-dir FOLDER)")
    return (base / text).resolve()


def launch(
    config: TrainConfig,
    runs_dir: str | Path | None = None,
    name: str | None = None,
    token: str | None = None,
    trial: TrialLink | None = None,
    actor: Actor | None = None,
) -> Path:
    """Create a run and start it in the background (or queue it); return its folder.

    Args:
        actor: Who launches it, and owns it (None: this machine's user, unrestricted; see
            `autotag.access`). A sweep's worker launches its trials for the sweep's owner.
        token: Idempotency key: a second launch with the same token within
            `DEDUPE_WINDOW_S` (a double click, a resubmitted form) returns the first run
            instead of creating another.
        trial: The sweep trial this run is, written into its folder before its trainer
            can start (the trainer reports to the trial from its first epoch).
    """
    from autotag.training.finetune import check_init_source

    runs_dir = runs_folder(runs_dir)
    actor = check(actor, "launch", Path(name or "a run"), None, runs_dir)  # before anything else is looked at
    if config.num_nodes > 1:
        raise RunError(not_here(config.num_nodes))
    check_init_source(config)
    check_devices(config)
    check_writable(runs_dir)  # a clear error for a read-only or full disk, before anything starts
    with runs_lock(runs_dir):
        if token:
            for info in list_runs(runs_dir):
                recent = time.time() - (info.status.created or 0.0) < DEDUPE_WINDOW_S
                if info.status.launch_token == token and recent:
                    return info.path
        run_dir = create_run(config, runs_dir, name)
        if trial:
            trial.write(RunFolder(run_dir).trial)
        sweep = Path(trial.sweep).name if trial else None  # the runs table groups a sweep's trials
        RunFolder(run_dir).write_status(launch_token=token, owner=actor.name, sweep=sweep)
        _schedule_locked(runs_dir)
    record(runs_dir, actor, "launch", run_dir)
    return run_dir


def schedule(runs_dir: str | Path | None = None) -> list[Path]:
    """Start queued runs, oldest first, while fewer than `max_parallel()` are active."""
    runs_dir = runs_folder(runs_dir)
    with runs_lock(runs_dir):
        return _schedule_locked(runs_dir)


def _schedule_locked(runs_dir: Path) -> list[Path]:
    runs = list_runs(runs_dir)
    active = sum(r.state.active for r in runs)
    started = []
    for info in sorted((r for r in runs if r.state is RunState.QUEUED), key=lambda r: r.name):
        if active >= max_parallel():
            break
        _spawn(info.path, info.status.resume_from)
        started.append(info.path)
        active += 1
    return started


def launch_env() -> dict[str, str]:
    """The environment of a trainer: this one, without another run's DDP launcher variables."""
    env = {**clean_launch_env(dict(os.environ)), "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    return env


def warm_up(runs_dir: str | Path | None = None) -> None:
    """Have a pre-warmed trainer ready for the next launch (see `autotag.runs.warm`)."""
    warm.ensure(runs_folder(runs_dir), launch_env(), PROJECT_ROOT)


def _spawn(run_dir: Path, resume_from: str | None = None) -> None:
    run = RunFolder(run_dir)
    run.write_status(state=RunState.STARTING, pid=None, pid_start=None, launched=time.time())
    env = launch_env()
    if warm.hand_over(run_dir, resume_from, env):
        return  # the warm process forks the trainer and records its pid
    cmd = [sys.executable, "-m", warm.PROCESS_MODULE, "exec", str(run_dir)]
    if resume_from:
        cmd += ["--resume", resume_from]
    pid = start_process(cmd, run.log, env)
    run.write_status(pid=pid, pid_start=process_start_time(pid))


def start_process(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> int:
    """`procs.start_detached` in the project root, with the launch environment unless `env` is given."""
    return start_detached(cmd, log, PROJECT_ROOT, launch_env() if env is None else env)


def stop(run_dir: Path, grace: float = 15.0, actor: Actor | None = None) -> RunState:
    """Stop a run: SIGTERM to the trainer alone, then after `grace` s SIGKILL to its group.

    Returns: the final state, "stopped" (or "completed"/"failed" if it ended on its own first).

    Raises:
        AccessDenied: `actor` may not stop this run (`autotag.access`).
    """
    run = RunFolder(run_dir)
    status = run.read_status()
    actor = check(actor, "stop", run_dir, status.owner, run_dir.parent)
    state = derive_state(run_dir, status)
    if state is RunState.QUEUED:
        run.write_status(state=RunState.STOPPED, ended=time.time(), note="cancelled before it started")
        record(run_dir.parent, actor, "stop", run_dir)
        return RunState.STOPPED
    if not state.active:
        raise RunError(f"run {run_dir.name} is not running (it is {state})")
    run.stop_request.touch()
    pid, start = status.pid, status.pid_start
    forced = False
    if pid and start is not None:  # never a signal on a pid alone (see procs.recorded_alive)
        send_signal(pid, signal.SIGTERM, group=False)  # the group too would kill DataLoader workers first
        deadline = time.monotonic() + grace
        while is_alive(pid, start) and time.monotonic() < deadline:
            time.sleep(0.1)
        forced = is_alive(pid, start)
        send_signal(pid, signal.SIGKILL, group=True)  # the trainer if it hung, and any orphaned workers
        # A killed process takes a moment to die: Stop returns once the trainer, its other DDP
        # ranks and loader workers are gone too (a rank seen alive just after Stop failed a test
        # under load), or after GROUP_EXIT_S (a process in uninterruptible sleep outlives SIGKILL).
        deadline = time.monotonic() + GROUP_EXIT_S
        while (is_alive(pid, start) or group_alive(pid)) and time.monotonic() < deadline:
            time.sleep(0.05)
    final = run.read_status().state
    if final.active or (final is RunState.FAILED and forced):
        run.write_status(state=RunState.STOPPED, forced=forced, ended=time.time())
    record(run_dir.parent, actor, "stop", run_dir)
    schedule(run_dir.parent)
    return run.read_status().state


#: What `unavailable` answers for.
Action = Literal["stop", "resume", "delete", "report"]


def unavailable(action: Action, info: RunInfo) -> str | None:
    """Why `action` cannot work on the run now, in words; None when it can.

    The pages disable the action's button with this as its help, and the library refuses
    with the same words: a button is never offered for what would only fail. (Who may act
    is `access.allowed`'s question.)
    """
    state = info.state
    if action == "stop":
        return None if state.stoppable else f"it is {state}: there is nothing to stop"
    if action == "delete":
        return "it is training: stop it first" if state.active else None
    if action == "report":
        if not state.final:
            return f"it is {state}: a report scores a run that has ended"
    elif not state.resumable:
        return f"it is {state}; only stopped, crashed or failed runs can resume"
    if has_checkpoint(info.path):
        return None
    if action == "report":
        return "it has no checkpoint to score (it ended before its first one)"
    return "it has no checkpoint to resume from (it stopped before its first one): train it again"


def resume(run_dir: Path, actor: Actor | None = None) -> Path:
    """Queue a stopped, crashed or failed run to continue from its last checkpoint as the same run.

    Raises:
        AccessDenied: `actor` may not resume this run.
    """
    from autotag.store.checkpoints import resumable_checkpoint

    status = RunFolder(run_dir).read_status()
    actor = check(actor, "resume", run_dir, status.owner, run_dir.parent)
    problem = unavailable("resume", RunInfo(run_dir, derive_state(run_dir, status), status))
    if problem:
        raise RunError(f"run {run_dir.name} cannot resume: {problem}")
    ckpt = resumable_checkpoint(run_dir)
    run = RunFolder(run_dir)
    run.stop_request.unlink(missing_ok=True)
    run.write_status(state=RunState.QUEUED, resume_from=str(ckpt.relative_to(run_dir)), error=None, forced=None)
    record(run_dir.parent, actor, "resume", run_dir)
    schedule(run_dir.parent)
    return ckpt


def delete(run_dir: Path, actor: Actor | None = None) -> None:
    """Remove a run folder; a running run must be stopped first.

    Only a folder that is certainly a run is removed, whatever the caller passed: not a
    symlink, the layout `RunFolder` declares and nothing else (a project's src/ or .git next
    to a config.yaml makes it not a run), a status.json autotag wrote, and not the current
    folder or one that holds it.

    Raises:
        RunError: it is not certainly a run folder, or it is still active.
        AccessDenied: `actor` may not delete this run.
    """
    run = RunFolder(Path(run_dir))
    problem = run.not_a_run() or _not_deletable(run)
    if problem:
        raise RunError(f"not deleted: {problem}")
    actor = check(actor, "delete", run.path, run.read_status().owner, run.path.parent)
    state = derive_state(run.path)
    if state.active:
        raise RunError(f"run {run.name} is {state}; stop it before deleting")
    shutil.rmtree(run.path)
    record(run.path.parent, actor, "delete", run.path)


def _not_deletable(run: RunFolder) -> str | None:
    """Why a folder that looks like a run must still not be removed, or None."""
    foreign = run.foreign_entries()
    if foreign:
        more = f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
        return f"{run.path} holds {', '.join(foreign[:3])}{more}, which no run makes"
    try:  # its state, at least, as autotag writes it (another field may be damaged: still a run)
        state = load_json(run.status_file, MAX_STATUS_BYTES).get("state")
    except (OSError, JsonFileError, AttributeError):
        state = None
    if not isinstance(state, str) or RunState.of(state) is RunState.UNKNOWN:
        return f"{run.path}'s {run.status_file.name} is not one autotag wrote (no state it knows)"
    try:
        here = Path.cwd().resolve()
    except OSError:  # the current folder was deleted: it is none of these
        return None
    if here == run.path.resolve() or run.path.resolve() in here.parents:
        return f"{run.path} is the current folder or holds it; leave it first"
    return None
