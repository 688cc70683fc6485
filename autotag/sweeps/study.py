"""A sweep's Optuna study: its storage, sampler and pruner, built alike by every worker.

A study's storage keeps trials, not the sampler or pruner that made them, so every process
that asks for trials or judges reports (the driver, `sweep worker`s, a resumed driver)
builds them here from the sweep's spec. Only sweep workers open the storage; a trial's
trainer reports through its run folder (`autotag.training.trial`).
"""

from __future__ import annotations

import warnings
from collections import Counter
from typing import TYPE_CHECKING, Any

from autotag.config import TrainConfig
from autotag.sweeps.folder import SweepFolder, SweepSpec
from autotag.sweeps.space import Space
from autotag.training.trial import PrunerName

if TYPE_CHECKING:
    import optuna

#: Seconds between a worker's heartbeats for its trials.
HEARTBEAT_S = 20
#: A trial whose worker has not beaten for this long is failed and retried (another machine's worker).
GRACE_S = 90
#: Retries of one trial whose process died, before its parameters are given up.
MAX_RETRIES = 3
#: Trials that finish before the median pruner compares against them.
MEDIAN_STARTUP_TRIALS = 3
#: The first epoch at which the median pruner may end a trial (steps are 1-based epochs):
#: one epoch is too noisy to judge by, and after it a pruned run has a checkpoint.
MEDIAN_FIRST_EPOCH = 2


def sweep_epochs(spec: SweepSpec, space: Space) -> int:
    """The most epochs a trial may train: what Hyperband divides its budgets from."""
    for param in space.params:
        if param.field == "max_epochs":
            return int(param.high if param.kind != "choice" else max(param.choices))
    return int(spec.fixed.get("max_epochs", TrainConfig.model_fields["max_epochs"].default))


def make_sampler(spec: SweepSpec, space: Space, asked: int = 0) -> optuna.samplers.BaseSampler:
    """TPE starts from a third of the budget drawn at random (3 to 10 trials) instead of
    Optuna's fixed 10, which would leave a 12-trial sweep two guided trials; with parallel
    trials, the constant liar keeps workers from asking for the same point.

    Args:
        asked: Trials the study already has. A resumed driver or a second worker offsets
            the seed by it, or its random draws would repeat the first driver's points.
    """
    import optuna

    seed = None if spec.seed is None else spec.seed + asked
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if spec.sampler == "grid":
        return _grid_sampler(space.grid(), seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=max(3, min(10, spec.trials // 3)), constant_liar=spec.parallel > 1
        )


def _grid_sampler(grid: dict[str, list[Any]], seed: int | None) -> optuna.samplers.BaseSampler:
    """Optuna's GridSampler, without its end: it calls `study.stop()` after the last point,
    which raises outside `optimize`. A sweep asks no more trials than the grid has points
    (`manager.new_sweep` checks), so its own count of trials ends it."""
    import optuna

    class AskTellGrid(optuna.samplers.GridSampler):
        def after_trial(self, *args: Any) -> None:
            pass

    return AskTellGrid(grid, seed=seed)


def open_study(folder: SweepFolder, spec: SweepSpec, space: Space) -> tuple[optuna.Study, Any]:
    """The sweep's study (created on first use) and its storage, with heartbeats and retries."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = open_storage(
            folder.storage_url(spec),
            heartbeat_interval=HEARTBEAT_S,
            grace_period=GRACE_S,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(MAX_RETRIES),
        )
    study = optuna.create_study(
        study_name=spec.study,
        storage=storage,
        sampler=make_sampler(spec, space),
        pruner=make_pruner(spec.pruner, sweep_epochs(spec, space)),
        direction=spec.direction,
        load_if_exists=True,
    )
    asked = len(study.get_trials(deepcopy=False))
    if asked:
        study.sampler = make_sampler(spec, space, asked)
    return study, storage


def trial_counts(study: optuna.Study) -> dict[str, int]:
    """Trials per state, in Optuna's lower-case names (complete, pruned, running, waiting, fail)."""
    return dict(Counter(t.state.name.lower() for t in study.get_trials(deepcopy=False)))


def finished(counts: dict[str, int]) -> int:
    """Trials that count towards a sweep's budget."""
    return counts.get("complete", 0) + counts.get("pruned", 0)


def make_pruner(name: PrunerName, max_epochs: int) -> optuna.pruners.BasePruner:
    import optuna

    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=MEDIAN_STARTUP_TRIALS, n_warmup_steps=MEDIAN_FIRST_EPOCH)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max_epochs, reduction_factor=3)
    return optuna.pruners.NopPruner()


def open_storage(url: str, **options: Any) -> optuna.storages.RDBStorage:
    """The study's storage (`options` go to RDBStorage). SQLite waits up to 60 s for a lock
    that another process holds; PostgreSQL connections are checked before use."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the driver's log says what happened
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    return optuna.storages.RDBStorage(url, engine_kwargs=engine, **options)
