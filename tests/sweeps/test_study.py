"""A sweep's study: its sampler, pruner and budget, built alike in every worker from sweep.yaml."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import optuna
import pytest

from autotag.config import TrainConfig
from autotag.sweeps.folder import SweepFolder, SweepSpec
from autotag.sweeps.space import parse_space
from autotag.sweeps.study import finished, make_pruner, make_sampler, open_study, sweep_epochs, trial_counts

pytestmark = pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")

SPEC = SweepSpec(
    runs_dir="runs", study="s", storage=None, space=["lr=1e-4:1e-2:log"], fixed={"data": "d"}, trials=12, parallel=1
)


def test_the_epoch_budget_comes_from_the_space_then_the_fixed_fields_then_the_schema() -> None:
    assert sweep_epochs(SPEC, parse_space(SPEC.space, SPEC.fixed)) == TrainConfig.model_fields["max_epochs"].default
    fixed = replace(SPEC, fixed={"data": "d", "max_epochs": 7})
    assert sweep_epochs(fixed, parse_space(fixed.space, fixed.fixed)) == 7
    searched = replace(SPEC, space=["max_epochs=5,20,10"])
    assert sweep_epochs(searched, parse_space(searched.space, searched.fixed)) == 20


def test_tpe_starts_from_a_third_of_the_budget_and_a_later_worker_draws_other_points() -> None:
    space = parse_space(SPEC.space, SPEC.fixed)
    assert make_sampler(SPEC, space)._n_startup_trials == 4
    assert make_sampler(replace(SPEC, trials=60), space)._n_startup_trials == 10
    assert make_sampler(replace(SPEC, trials=4), space)._n_startup_trials == 3
    seeded = replace(SPEC, seed=5, sampler="random")

    def first_draw(asked: int) -> float:
        study = optuna.create_study(sampler=make_sampler(seeded, space, asked))
        return study.ask({"lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)}).params["lr"]

    assert first_draw(0) == first_draw(0) and first_draw(0) != first_draw(3)


@pytest.mark.parametrize(
    ("name", "kind"), [("median", "MedianPruner"), ("hyperband", "HyperbandPruner"), ("none", "NopPruner")]
)
def test_each_pruner_name_makes_its_pruner(name: str, kind: str) -> None:
    assert type(make_pruner(name, 10)).__name__ == kind


def test_a_reopened_study_keeps_its_trials_and_counts_only_finished_ones_toward_the_budget(tmp_path: Path) -> None:
    folder = SweepFolder(tmp_path)
    spec = replace(SPEC, sampler="grid", space=["lr=0.001,0.01,0.1"], trials=3)
    space = parse_space(spec.space, spec.fixed)
    study, _ = open_study(folder, spec, space)
    study.add_trial(optuna.trial.create_trial(params={"lr": 0.01}, distributions=space_dist(), value=0.5))
    study.add_trial(
        optuna.trial.create_trial(state=optuna.trial.TrialState.PRUNED, params={"lr": 0.1}, distributions=space_dist())
    )
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL))
    again, _ = open_study(folder, spec, space)
    counts = trial_counts(again)
    assert counts == {"complete": 1, "pruned": 1, "fail": 1} and finished(counts) == 2
    trial = again.ask()  # a grid point; the grid's end does not stop the study outside `optimize`
    assert space.sample(trial)["lr"] in (0.001, 0.01, 0.1)
    again.tell(trial, 0.4)
    assert finished(trial_counts(again)) == 3


def space_dist() -> dict[str, optuna.distributions.BaseDistribution]:
    return {"lr": optuna.distributions.CategoricalDistribution([0.001, 0.01, 0.1])}
