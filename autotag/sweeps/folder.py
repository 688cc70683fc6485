"""Sweep folders: what a sweep is (sweep.yaml), its study (study.db), and its driver's status.

    <runs dir>/sweeps/<UTC time>_<name>_<id>/
      sweep.yaml     .spec          the space, the fixed fields and the search settings, written once
      study.db       .study_db      the Optuna study (SQLite) unless sweep.yaml names another storage
      status.json    .status_file   the driver's state, pid + start time, and its last count of trials
      sweep.log      .log           the driver's output (a background sweep)
      stop_requested .stop_request  Stop was asked for (resume removes it)

Each trial is an ordinary run in the runs folder (`autotag.store.run_folder`), whose trial.json
names the study and trial; the study, not this folder, is the truth about trials.
"""

from __future__ import annotations

import secrets
import time
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml

from autotag.config import ConfigError, read_yaml_file
from autotag.errors import AutotagError
from autotag.store.files import Count, Pid, Timestamp, file_lock
from autotag.store.job import RunState, StatusFile
from autotag.store.run_folder import check_writable, runs_folder, sanitize_name
from autotag.training.trial import DIRECTIONS, Metric, PrunerName

SamplerName = Literal["tpe", "random", "grid"]


class SweepError(AutotagError):
    """A sweep cannot be made, found or continued as asked; the message says why."""


SWEEPS_DIR = "sweeps"


def sweeps_folder(runs_dir: str | Path | None = None) -> Path:
    """Where a runs folder keeps its sweeps."""
    return runs_folder(runs_dir) / SWEEPS_DIR


@dataclass(frozen=True)
class SweepSpec:
    """sweep.yaml: everything that decides what a sweep searches and how."""

    runs_dir: str  # where the trials' runs go
    study: str
    storage: str | None  # None: study.db in the sweep folder
    space: list[str]  # `FIELD=SPEC` entries (autotag.sweeps.space)
    fixed: dict[str, Any]  # config fields every trial shares
    trials: int
    parallel: int
    sampler: SamplerName = "tpe"
    pruner: PrunerName = "median"
    metric: Metric = "val_loss"
    seed: int | None = None

    @property
    def direction(self) -> str:
        return DIRECTIONS[self.metric]

    def to_yaml(self) -> str:
        return yaml.safe_dump(asdict(self), sort_keys=False)


@dataclass
class SweepStatus:
    """status.json of a sweep: written by its driver; `autotag.sweeps.manager` derives "crashed"."""

    state: RunState = RunState.UNKNOWN
    created: Timestamp | None = None
    started: Timestamp | None = None
    updated: Timestamp | None = None
    ended: Timestamp | None = None
    pid: Pid | None = None
    pid_start: Timestamp | None = None
    host: str | None = None
    owner: str | None = None  # who made it (`autotag.access`); its trials belong to them too
    error: str | None = None
    counts: dict[str, Count] = field(default_factory=dict)  # trials per Optuna state, as last seen


@dataclass(frozen=True)
class SweepFolder:
    """One sweep's folder; the only place that names its files."""

    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def label(self) -> str:
        """The name given to `create_sweep` (folders are `<UTC time>_<name>_<id>`); its trials' runs carry it."""
        parts = self.path.name.split("_")
        return "_".join(parts[1:-1]) if len(parts) >= 3 else self.path.name

    @property
    def spec_file(self) -> Path:
        return self.path / "sweep.yaml"

    @property
    def study_db(self) -> Path:
        return self.path / "study.db"

    @property
    def status_file(self) -> Path:
        return self._status.path

    @property
    def _status(self) -> StatusFile[SweepStatus]:
        return StatusFile.of(self.path, SweepStatus)

    @property
    def log(self) -> Path:
        return self.path / "sweep.log"

    @property
    def stop_request(self) -> Path:
        return self.path / "stop_requested"

    @property
    def is_sweep(self) -> bool:
        return self.spec_file.is_file()

    def spec(self) -> SweepSpec:
        """sweep.yaml, read like a config (bounded YAML).

        Raises:
            SweepError: it is missing, damaged, or not a sweep's (the message names the file).
        """
        what = f"{self.name}/{self.spec_file.name}"
        try:
            data = read_yaml_file(self.spec_file, what)
            if not isinstance(data, dict):
                raise ConfigError(f"{what} is not a mapping of field: value")
            return SweepSpec(**data)
        except ConfigError as exc:
            raise SweepError(str(exc)) from None
        except TypeError:  # a field no sweep has, or one missing
            raise SweepError(f"{what} is not a sweep's: its fields are not those autotag writes") from None

    def storage_url(self, spec: SweepSpec | None = None) -> str:
        spec = spec or self.spec()
        return spec.storage or f"sqlite:///{self.study_db}"

    def read_status(self) -> SweepStatus:
        return self._status.read()

    def write_status(self, **changes: Any) -> SweepStatus:
        return self._status.write(**changes)

    def lock(self, name: str = ".workers.lock") -> AbstractContextManager[None]:
        """An exclusive lock between the processes of this machine (taking over trials)."""
        return file_lock(self.path / name)


def create_sweep(spec: SweepSpec, name: str | None = None) -> SweepFolder:
    """A new sweep folder with its sweep.yaml and a "queued" status.

    Raises:
        RunError: the runs folder is read-only, full or cannot be made.
    """
    base = sweeps_folder(spec.runs_dir)
    check_writable(base)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    while True:
        path = base / f"{stamp}_{sanitize_name(name or 'sweep')}_{secrets.token_hex(3)}"
        try:
            path.mkdir()
            break
        except FileExistsError:
            continue
    folder = SweepFolder(path)
    if not spec.study:
        spec = SweepSpec(**{**asdict(spec), "study": path.name})
    folder.spec_file.write_text(spec.to_yaml(), encoding="utf-8")
    folder.write_status(state=RunState.QUEUED, created=time.time())
    return folder
