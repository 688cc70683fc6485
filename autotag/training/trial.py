"""What ties a run to a sweep's trial: trial.json, and the files through which its worker prunes it.

A trial of a sweep (`autotag.sweeps`) is an ordinary run whose folder also holds a
trial.json naming its Optuna study and trial. Trainer and worker talk through the run
folder, as every other pair of autotag's processes does:

- after each validation the trainer writes the epoch's metrics to status.json
  (`validated_epoch`, `last_metrics`: the status callback does, for the dashboard too);
- the worker that owns the trial reads status.json on each of its polls, records the value
  on the trial in the study, asks the study's pruner, and writes its answer to the run's
  sweep_verdict.json (`Verdict`: `{"epoch": 3, "prune": false}`);
- the trainer waits for that answer before training on (`await_verdict`), so a trial is
  pruned between epochs, as optuna_integration's callback prunes it.

The trainer never opens the study itself: importing Optuna's storage (SQLAlchemy, Alembic)
cost every trial about a second of its start, and a trainer holding no database connection
is one less writer for SQLite to serialise and one less connection for PostgreSQL to hold.
A worker that takes a dead worker's trials over needs to tell their trainers nothing: it
reads the same files. Nothing here imports torch, Lightning or Optuna.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Literal, TypeVar

from pydantic import Field

from autotag.store.files import Count, JsonFileError, load_json, typed_fields, write_json_atomic
from autotag.store.run_folder import RunFolder

Metric = Literal["val_loss", "val_roc_auc", "val_pr_auc"]
PrunerName = Literal["median", "hyperband", "none"]
#: Which way each metric is better.
DIRECTIONS: dict[str, str] = {"val_loss": "minimize", "val_roc_auc": "maximize", "val_pr_auc": "maximize"}
#: How long a trainer waits for its worker's verdict on an epoch before it trains on. A worker
#: answers within its poll (a quarter second) unless the study's storage is slow (a locked
#: SQLite file, a far PostgreSQL) or the worker died and none has taken the trial over yet
#: (within 5 s); a verdict that comes later is heeded after the next validation.
VERDICT_WAIT_S = 10.0
#: How often a waiting trainer looks for the verdict.
VERDICT_POLL_S = 0.02

log = logging.getLogger("autotag.training.fit")  # the trainer's train.log says what happened


@dataclass(frozen=True)
class TrialLink:
    """trial.json: which study and trial a run is.

    (A trial.json of an earlier version also names a port and a token: they are not read.)
    """

    storage: str  # an SQLAlchemy URL (sqlite:///..., postgresql+psycopg://...)
    study: str
    trial_id: int
    number: int
    sweep: str  # the sweep folder
    metric: Metric
    pruner: PrunerName

    def write(self, path: Path) -> None:
        write_json_atomic(path, asdict(self))

    @classmethod
    def read(cls, path: Path) -> TrialLink | None:
        """trial.json, or None when there is none or it is not as autotag writes it."""
        return _read_record(cls, path)


@dataclass(frozen=True)
class Verdict:
    """sweep_verdict.json: the worker's answer to the trial's report of `epoch` (1-based)."""

    epoch: Count
    prune: Annotated[bool, Field(strict=True)]

    def write(self, run: RunFolder) -> None:
        write_json_atomic(run.sweep_verdict, asdict(self))

    @classmethod
    def read(cls, run: RunFolder) -> Verdict | None:
        return _read_record(cls, run.sweep_verdict)


R = TypeVar("R")


def _read_record(cls: type[R], path: Path) -> R | None:
    """A small JSON record autotag writes, or None when it is missing or not as autotag writes it
    (a field missing, or of the wrong type: a damaged verdict must not prune a trial)."""
    try:
        data = load_json(path)
    except (OSError, JsonFileError):
        return None
    if not isinstance(data, dict):
        return None
    values, problems = typed_fields(cls, data)
    try:
        return None if problems else cls(**values)
    except TypeError:  # a field every record has is missing
        return None


def await_verdict(run: RunFolder, epoch: int, wait_s: float = VERDICT_WAIT_S) -> bool:
    """Whether the worker prunes the trial, after its report of `epoch` (already in status.json).

    Returns True as soon as a verdict says prune (a late one about an earlier epoch too),
    False once the verdict on `epoch` says go on, or after `wait_s` without one: the trial
    trains on, and train.log says the epoch went unjudged.
    """
    deadline = time.monotonic() + wait_s
    while True:
        verdict = Verdict.read(run)
        if verdict is not None and (verdict.prune or verdict.epoch >= epoch):
            return verdict.prune
        if time.monotonic() >= deadline:
            log.warning("epoch %d: no word from the sweep within %.0f s; the trial trains on", epoch, wait_s)
            return False
        time.sleep(VERDICT_POLL_S)
