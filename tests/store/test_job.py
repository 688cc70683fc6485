"""One kernel derives every job's state: runs, sweeps and robustness reports (test_manager,
tests/sweeps and tests/robustness drive it through real processes)."""

import os
import time
from dataclasses import dataclass

import psutil

from autotag.store.job import START_TIMEOUT_S, RunState, derive_job_state


@dataclass
class _Record:
    state: RunState
    pid: int | None = None
    pid_start: float | None = None
    updated: float | None = None


def test_one_kernel_derives_every_jobs_state_from_its_record_and_its_process() -> None:
    now = time.time()
    crashes: list[str] = []

    def state(*records: _Record) -> RunState:
        reads = iter(records)
        return derive_job_state(lambda: next(reads), lambda: crashes.append("crashed"))

    assert state(_Record(RunState.COMPLETED)) == RunState.COMPLETED  # final: never looked at again
    assert state(_Record(RunState.STARTING, updated=now)) == RunState.STARTING  # launched a moment ago
    me = psutil.Process()
    assert state(_Record(RunState.RUNNING, os.getpid(), me.create_time(), now)) == RunState.RUNNING
    assert not crashes
    late = _Record(RunState.STARTING, updated=now - START_TIMEOUT_S - 1)  # its launcher is gone
    assert state(late, late) == RunState.CRASHED and crashes == ["crashed"]
    gone = _Record(RunState.RUNNING, 2**22 + 7, 1.0, now)  # a pid that does not run
    assert state(gone, _Record(RunState.COMPLETED, gone.pid)) == RunState.COMPLETED  # it finished meanwhile
    assert crashes == ["crashed"]
