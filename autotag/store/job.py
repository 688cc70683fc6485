"""A job's status file and its life: one kernel for runs, sweeps and robustness reports.

A run's trainer, a sweep's driver and a robustness report's process live alike: a launcher
writes "queued" or "starting" and then the pid, the process writes its progress and its
final state, and whoever reads the status of a job whose process is gone without a final
state records "crashed". Each job's status.json is read as a typed record (`RunStatus`,
`SweepStatus`, `ReportStatus`) and written by merging under its folder's lock
(`StatusFile`); what differs between the three is only what each records when it crashed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from enum import StrEnum
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from autotag.store.files import JsonFileError, file_lock, finite_or_none, load_json, typed_fields, write_json_atomic
from autotag.store.procs import recorded_alive


class RunState(StrEnum):
    """A job's state (a run's, a sweep's, a robustness report's) as status.json spells it: its
    process writes its own, `derive_job_state` records "crashed". Being a `str`, it is stored
    and compared as one."""

    QUEUED = "queued"
    STARTING = "starting"
    RUNNING = "running"
    COMPLETED = "completed"
    STOPPED = "stopped"
    FAILED = "failed"
    CRASHED = "crashed"
    PRUNED = "pruned"  # a sweep's pruner ended the trial early (autotag.training.callbacks.PruneTrial)
    UNKNOWN = "unknown"  # status.json missing, unreadable or from an unknown writer

    @classmethod
    def of(cls, value: object) -> RunState:
        try:
            return cls(value)
        except ValueError:
            return cls.UNKNOWN

    @property
    def active(self) -> bool:
        """A trainer process is (about to be) running it."""
        return self in (RunState.STARTING, RunState.RUNNING)

    @property
    def final(self) -> bool:
        """It has ended and nothing will change it on its own."""
        return self in (RunState.COMPLETED, RunState.FAILED, RunState.STOPPED, RunState.CRASHED, RunState.PRUNED)

    @property
    def resumable(self) -> bool:
        """Resume may continue it from its last checkpoint."""
        return self in (RunState.STOPPED, RunState.CRASHED, RunState.FAILED)

    @property
    def stoppable(self) -> bool:
        """Stop ends its trainer, or cancels it while queued."""
        return self.active or self is RunState.QUEUED


#: The largest status file read: a run's status.json is about 2 KB, and every listing reads them all.
MAX_STATUS_BYTES = 1 << 20

Record = TypeVar("Record")


def record_from_json(record: type[Record], data: object, file: str) -> Record:
    """A status file's JSON object as the typed `record` (a dataclass with `state` and `error`).

    Every field is checked against its declared type and bounds, as config.yaml is against
    its schema: a field of the wrong type (`"pid": "abc"`, `"train_clock": 5`) makes the
    record state "unknown" with the reason in `error`, so one damaged file shows as one
    unknown run instead of breaking `runs list` and every page that lists runs.
    """
    if not isinstance(data, dict):
        return record(error=f"{file} is not a JSON object")
    values, problems = typed_fields(record, data)
    state = data.get("state")
    if not isinstance(state, str) or RunState.of(state) is RunState.UNKNOWN and state != RunState.UNKNOWN:
        problems.append(f"state: not one of {', '.join(RunState)}")
    if problems:
        values["error"] = f"{file} is damaged ({'; '.join(problems)}); autotag did not write it so"
        return record(**values)
    return record(state=RunState(state), **values)


def read_record(record: type[Record], file: Path) -> Record:
    """A status file as the typed `record`: unknown when missing, unknown with the reason when damaged."""
    try:
        data = load_json(file, MAX_STATUS_BYTES)
    except FileNotFoundError:
        return record()
    except JsonFileError as exc:
        return record(error=f"{exc}; autotag did not write it so")
    return record_from_json(record, data, file.name)


def merge_status(file: Path, changes: dict[str, Any], lock: Path, record: type) -> dict[str, Any]:
    """Merge `changes` into the JSON object in `file`, stamped `updated`, and return it.

    The read-modify-write holds `lock`, so a trainer's and a manager's writes (or a sweep's
    workers') never lose each other's fields; the file is replaced atomically, so a reader
    never sees half of it.

    Raises:
        TypeError: a field that the dataclass `record` (the file's typed reader) does not
            declare: a misspelt name fails where it is written, not as nothing on a page.
    """
    unknown = changes.keys() - {f.name for f in fields(record)}
    if unknown:
        raise TypeError(f"{file.name} has no field {', '.join(sorted(unknown))} (see {record.__name__})")
    with file_lock(lock):
        try:
            data = load_json(file, MAX_STATUS_BYTES)
        except (OSError, JsonFileError):  # a damaged file is replaced by what is known now
            data = {}
        data = data if isinstance(data, dict) else {}
        data.update(changes)
        data["updated"] = time.time()
        data = finite_or_none(data)  # what is written, returned as written
        write_json_atomic(file, data)
    return data


#: The lock file of a folder's status.json (a hidden file of the layout, as temporary files are).
STATUS_LOCK = ".status.lock"


@dataclass(frozen=True)
class StatusFile(Generic[Record]):
    """A job's status.json, read as its typed record and written by merging under its folder's lock."""

    path: Path
    record: type[Record]

    @classmethod
    def of(cls, folder: Path, record: type[Record]) -> StatusFile[Record]:
        """The status.json of a run's, a sweep's or a report's folder."""
        return cls(folder / "status.json", record)

    def read(self) -> Record:
        """The record: state "unknown" when the file is missing, and with the reason when it is damaged."""
        return read_record(self.record, self.path)

    def write(self, **changes: Any) -> Record:
        """Merge `changes` into the file atomically; the record as written.

        Raises:
            TypeError: a field that the record does not declare.
        """
        merged = merge_status(self.path, changes, self.path.with_name(STATUS_LOCK), self.record)
        return record_from_json(self.record, merged, self.path.name)


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
