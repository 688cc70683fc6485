"""What ties a run to a sweep's trial: trial.json, the study's storage, and its pruner.

A trial of a sweep (`autotag.sweeps`) is an ordinary run whose folder also holds a
trial.json naming its Optuna study and trial. Its trainer reports to that trial
(`autotag.training.callbacks.PruneTrial`); the sweep's driver reads the result. Both
build the pruner here, since a study's storage keeps no pruner. Nothing here imports
torch or Lightning, so the driver and the dashboard stay light.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from autotag.runs.folder import write_json_atomic

if TYPE_CHECKING:
    import optuna

Metric = Literal["val_loss", "val_roc_auc", "val_pr_auc"]
PrunerName = Literal["median", "hyperband", "none"]
#: Which way each metric is better.
DIRECTIONS: dict[str, str] = {"val_loss": "minimize", "val_roc_auc": "maximize", "val_pr_auc": "maximize"}
#: Trials that finish before the median pruner compares against them.
MEDIAN_STARTUP_TRIALS = 3
#: The first epoch at which the median pruner may end a trial (steps are 1-based epochs):
#: one epoch is too noisy to judge by, and after it a pruned run has a checkpoint.
MEDIAN_FIRST_EPOCH = 2


@dataclass(frozen=True)
class TrialLink:
    """trial.json: which study and trial a run is, and what its trainer reports to the pruner."""

    storage: str  # an SQLAlchemy URL (sqlite:///..., postgresql+psycopg://...)
    study: str
    trial_id: int
    number: int
    sweep: str  # the sweep folder
    metric: Metric
    pruner: PrunerName
    max_epochs: int

    def write(self, path: Path) -> None:
        write_json_atomic(path, asdict(self))

    @classmethod
    def read(cls, path: Path) -> TrialLink | None:
        try:
            return cls(**json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return None


def make_pruner(name: PrunerName, max_epochs: int) -> optuna.pruners.BasePruner:
    """The study's pruner; built the same way in the sweep driver and in every trial's trainer
    (a study's storage keeps no pruner)."""
    import optuna

    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=MEDIAN_STARTUP_TRIALS, n_warmup_steps=MEDIAN_FIRST_EPOCH)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max_epochs, reduction_factor=3)
    return optuna.pruners.NopPruner()


def open_storage(url: str, existing: bool = False, **options: Any) -> optuna.storages.RDBStorage:
    """The study's storage (`options` go to RDBStorage). SQLite waits up to 60 s for a lock
    that another process holds; PostgreSQL connections are checked before use.

    Args:
        existing: The sweep's driver made the storage's tables: skip creating them and
            checking their schema version (a trial's trainer saves 0.17 s of its start).
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the driver's log and train.log say what happened
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    if existing:
        options |= {"skip_table_creation": True, "skip_compatibility_check": True}
    return optuna.storages.RDBStorage(url, engine_kwargs=engine, **options)
