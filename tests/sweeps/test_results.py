"""The Sweep page's figures: built once per change of the study's trials, for every viewer."""

from __future__ import annotations

from pathlib import Path

import optuna

from autotag.sweeps.results import sweep_figures


def _tell(study: optuna.Study, value: float) -> None:
    trial = study.ask({"lr": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True)})
    trial.report(value + 0.1, 0)
    study.tell(trial, value)


def test_figures_are_built_once_per_change_of_the_trials() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.RandomSampler(seed=0))
    assert sweep_figures(study, Path("/sweeps/a")) == {}  # nothing complete yet: nothing to draw
    _tell(study, 0.5)
    _tell(study, 0.4)
    first = sweep_figures(study, Path("/sweeps/a"))
    assert "Parameter importances" in first and "Intermediate values (per epoch)" in first
    assert sweep_figures(study, Path("/sweeps/a")) is first  # a refresh that finds nothing new
    assert sweep_figures(study, Path("/sweeps/b")) is not first  # another sweep, its own figures
    _tell(study, 0.3)
    assert sweep_figures(study, Path("/sweeps/a")) is not first  # a trial ended: drawn anew


def test_a_running_trial_is_drawn_per_epoch_with_its_name_and_few_trials_rank_nothing() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.RandomSampler(seed=1))
    running = study.ask({"lr": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True)})
    running.report(0.7, 1)
    live = sweep_figures(study, Path("/sweeps/live"))
    assert list(live) == ["Intermediate values (per epoch)"]  # before any trial completes
    (line,) = live["Intermediate values (per epoch)"].data
    assert line.name == "trial 0" and line.hovertemplate.startswith("trial 0, epoch")
    for value in (0.5, 0.4, 0.45):
        _tell(study, value)
    importances = sweep_figures(study, Path("/sweeps/live"))["Parameter importances"]
    assert importances.layout.title.text.startswith("From 3 complete trials only: a first guess")
