"""Sweeps that live outside the browser: create, start in the background, list, stop, resume.

A sweep's driver is a process of its own (`python -m autotag.sweeps.driver SWEEP`, its own
session, output to sweep.log), as a run's trainer is, so a sweep outlives the page or shell
that started it. Its state is the driver's own, unless the driver is gone without writing
one: then it is "crashed", and `resume` starts a new driver that takes over the trials
still training.
"""

from __future__ import annotations

import logging
import math
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autotag.access import Actor, check, record
from autotag.config import make_config
from autotag.runs import manager as runs
from autotag.store.job import RunState, derive_job_state
from autotag.store.procs import is_alive, process_start_time, send_signal
from autotag.store.run_folder import runs_folder
from autotag.sweeps.folder import (
    SamplerName,
    SweepError,
    SweepFolder,
    SweepSpec,
    SweepStatus,
    create_sweep,
    sweeps_folder,
)
from autotag.sweeps.space import check_space, parse_point, parse_space
from autotag.training.trial import Metric, PrunerName

DRIVER = "autotag.sweeps.driver"
log = logging.getLogger("autotag.sweeps")


@dataclass
class SweepInfo:
    """One sweep as `sweep list` and the Sweep page show it."""

    folder: SweepFolder
    state: RunState
    status: SweepStatus
    spec: SweepSpec

    @property
    def name(self) -> str:
        return self.folder.name


def new_sweep(
    fixed: dict[str, Any],
    space: list[str],
    trials: int,
    parallel: int = 1,
    sampler: SamplerName = "tpe",
    pruner: PrunerName = "median",
    metric: Metric = "val_loss",
    storage: str | None = None,
    study: str | None = None,
    seed: int | None = None,
    runs_dir: str | Path | None = None,
    name: str | None = None,
    first: Sequence[str] = (),
    actor: Actor | None = None,
) -> SweepFolder:
    """Check everything a sweep needs, then make its folder and study; nothing runs yet.

    Args:
        fixed: Config fields every trial shares (`data` at least).
        space: `FIELD=SPEC` entries (`autotag.sweeps.space`).
        parallel: Trials this machine trains at once, at most `AUTOTAG_MAX_RUNS`.
        storage: An SQLAlchemy URL of a study shared by workers on several machines
            (PostgreSQL); None keeps the study in the sweep folder (SQLite).
        first: Trials to run before the sampler's own, `FIELD=VALUE,...` each (Optuna's
            `enqueue_trial`): a known good config, or one to compare against.
        actor: Who makes it, and owns it and its trials (None: this machine's user).

    A space whose combinations are partly invalid configs (hop_length above n_fft) is made,
    with one warning line in the log; one without a valid combination is refused.

    Raises:
        ConfigError (SpaceError among them): a bad fixed value or search-space entry, or
            a space without a valid combination.
        DataFormatError, DataSetError: the data set cannot be trained on.
        SweepError: trials or parallel out of range, a grid smaller than the trials.
        AccessDenied: `actor` may not launch (a viewer).
    """
    from autotag.data.prepare import open_dataset
    from autotag.sweeps.study import open_study

    actor = check(actor, "sweep", Path(name or "a sweep"), None, runs_folder(runs_dir))

    if trials < 1:
        raise SweepError(f"--trials must be at least 1, got {trials}")
    if not 1 <= parallel <= runs.max_parallel():
        raise SweepError(
            f"--parallel {parallel}: this machine trains at most {runs.max_parallel()} run(s) at once "
            f"(AUTOTAG_MAX_RUNS); each trial is a run, so raise AUTOTAG_MAX_RUNS to train more together"
        )
    parsed = parse_space(space, fixed)
    points = [parse_point(text, parsed) for text in first]
    config = make_config(**fixed)
    partly_invalid = check_space(parsed, fixed)
    if sampler == "grid":
        size = math.prod(len(v) for v in parsed.grid().values())
        if trials > size:
            raise SweepError(f"the grid has {size} points; --trials {trials} would repeat some of them")
    open_dataset(config)  # a data set that cannot be trained on fails here, not in every trial
    values = config.model_dump(mode="json")
    spec = SweepSpec(
        runs_dir=str(runs_folder(runs_dir)),
        study=study or "",
        storage=storage,
        space=parsed.texts,
        fixed={k: values[k] for k in fixed},
        trials=trials,
        parallel=parallel,
        sampler=sampler,
        pruner=pruner,
        metric=metric,
        seed=seed,
    )
    folder = create_sweep(spec, name)
    try:
        study, _ = open_study(folder, folder.spec(), parsed)  # creates the study
    except Exception as exc:  # a bad URL, a missing database driver, a server that is not there
        shutil.rmtree(folder.path)
        raise SweepError(
            f"cannot open the study's storage {folder.storage_url(spec)}: {str(exc).splitlines()[0]}"
        ) from None
    for point in points:
        study.enqueue_trial(point)
    folder.write_status(owner=actor.name)
    record(runs_folder(runs_dir), actor, "sweep", folder.path)
    if partly_invalid:  # said once the sweep exists, so that a refusal stays one line
        log.warning("warning: %s; such trials fail at once and others take their place", partly_invalid)
    return folder


def start(folder: SweepFolder, actor: Actor | None = None) -> None:
    """Start the sweep's driver in the background (after `new_sweep` or `check_resumable`).

    Raises:
        AccessDenied: `actor` may not run this sweep (a trainer: only their own).
    """
    runs_dir = Path(folder.spec().runs_dir)
    actor = check(actor, "resume", folder.path, folder.read_status().owner, runs_dir)
    folder.write_status(state=RunState.STARTING, pid=None, pid_start=None, error=None)
    pid = runs.start_process([sys.executable, "-m", DRIVER, str(folder.path)], folder.log)
    folder.write_status(pid=pid, pid_start=process_start_time(pid))
    record(runs_dir, actor, "sweep start", folder.path)


def derive_state(folder: SweepFolder, status: SweepStatus | None = None) -> RunState:
    """The driver's state; "crashed" (recorded) when it is gone without a final one.

    Workers without a driver (`sweep worker`, SLURM) record no pid and write status.json every
    second, so such a sweep stays within the kernel's start timeout and is never "crashed".
    """
    return derive_job_state(
        folder.read_status,
        lambda: folder.write_status(
            state=RunState.CRASHED, ended=time.time(), error="the sweep's driver ended without a state"
        ),
        status,
    )


def resolve_sweep(ref: str | Path, runs_dir: str | Path | None = None) -> SweepFolder:
    """A sweep from its folder's name in the runs folder's sweeps/, or from its path.

    Raises:
        SweepError: no sweep there.
    """
    text = str(ref)
    named = sweeps_folder(runs_dir) / text
    path = named if "/" not in text and named.is_dir() else Path(text).expanduser().resolve()
    folder = SweepFolder(path)
    if not folder.is_sweep:
        raise SweepError(f"no sweep {text!r} (give a sweep folder, or its name in {sweeps_folder(runs_dir)})")
    return folder


def list_sweeps(runs_dir: str | Path | None = None) -> list[SweepInfo]:
    """Every sweep of the runs folder, newest first."""
    base = sweeps_folder(runs_dir)
    infos = []
    for path in sorted(base.iterdir(), reverse=True) if base.is_dir() else []:
        folder = SweepFolder(path)
        try:
            spec = folder.spec()
        except SweepError:  # not a sweep autotag made, or a damaged one: not listed
            continue
        status = folder.read_status()
        state = derive_state(folder, status)
        infos.append(SweepInfo(folder, state, folder.read_status() if state != status.state else status, spec))
    return infos


def stop(folder: SweepFolder, timeout: float = 120.0, actor: Actor | None = None) -> RunState:
    """Stop a sweep: its workers stop their trials, whose parameters `resume` runs again.

    Raises:
        AccessDenied: `actor` may not stop this sweep.
    """
    from autotag.sweeps.driver import release_dead

    status = folder.read_status()
    actor = check(actor, "stop", folder.path, status.owner, Path(folder.spec().runs_dir))
    folder.stop_request.touch()
    if derive_state(folder, status).active and status.pid:
        send_signal(status.pid, signal.SIGTERM, group=False)
        deadline = time.monotonic() + timeout
        while is_alive(status.pid, status.pid_start) and time.monotonic() < deadline:
            time.sleep(0.2)
    release_dead(folder)  # trials of workers that died here (a killed driver) are stopped too
    state = folder.read_status().state
    if state is not RunState.COMPLETED:
        folder.write_status(state=RunState.STOPPED, ended=time.time())
    record(Path(folder.spec().runs_dir), actor, "stop", folder.path)
    return folder.read_status().state


def check_resumable(folder: SweepFolder, actor: Actor | None = None) -> None:
    """Clear the way for a new driver of a stopped, crashed, failed or never started sweep.

    Raises:
        SweepError: the sweep is running or completed.
        AccessDenied: `actor` may not resume this sweep.
    """
    actor = check(actor, "resume", folder.path, folder.read_status().owner, Path(folder.spec().runs_dir))
    state = derive_state(folder)
    if state.active or state is RunState.COMPLETED:
        raise SweepError(f"sweep {folder.name} is {state}; only stopped, crashed or failed sweeps resume")
    folder.stop_request.unlink(missing_ok=True)
    record(Path(folder.spec().runs_dir), actor, "resume", folder.path)
