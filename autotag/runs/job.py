"""A job's life from its status record and its process: one kernel for runs, sweeps and reports.

A run's trainer, a sweep's driver and a robustness report's process live alike: a launcher
writes "starting" and then the pid, the process writes its final state. What differs is only
what each records when its process is gone without a final state.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from autotag.runs.folder import RunState
from autotag.runs.procs import recorded_alive

#: A job still "starting" without a pid this long after its launch lost its launcher.
START_TIMEOUT_S = 60.0


class JobRecord(Protocol):
    """What a job's status file says about its process: a run's, a sweep's, a report's."""

    state: RunState
    pid: int | None
    pid_start: float | None
    updated: float | None


def derive_job_state(
    read: Callable[[], JobRecord], crashed: Callable[[], None], status: JobRecord | None = None
) -> RunState:
    """A job's state from its status file and its process; "crashed" once its process is gone.

    An active state whose process is gone (or that got no pid within START_TIMEOUT_S) was
    never finished: `crashed()` records that, after one more read, since the process may have
    written its final state a moment ago.
    """
    status = read() if status is None else status
    if not status.state.active:
        return status.state
    if status.pid is None and time.time() - (status.updated or 0.0) < START_TIMEOUT_S:
        return status.state
    if recorded_alive(status.pid, status.pid_start):
        return status.state
    fresh = read()
    if fresh.state.active and fresh.pid == status.pid:
        crashed()
        return RunState.CRASHED
    return fresh.state
