"""A sweep worker judges its trials' reports from their status files and answers in their run folders."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import optuna
import pytest

from autotag.store.job import RunState
from autotag.store.procs import process_start_time
from autotag.store.run_folder import RunFolder, create_run
from autotag.sweeps import manager
from autotag.sweeps.driver import SweepWorker, WorkerId
from autotag.sweeps.space import parse_space
from autotag.sweeps.study import MEDIAN_FIRST_EPOCH, MEDIAN_STARTUP_TRIALS, open_study
from autotag.training.trial import Verdict
from tests.conftest import tiny_config

pytestmark = pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")


@pytest.fixture
def worker(demo_dataset: Path, tmp_path: Path) -> SweepWorker:
    """A worker on a median-pruned study whose finished trials scored val_roc_auc 0.9 at every epoch."""
    folder = manager.new_sweep(
        {"data": str(demo_dataset), "model": "tiny"},
        ["lr=1e-3:1e-2:log"],
        trials=10,
        metric="val_roc_auc",
        runs_dir=tmp_path / "runs",
    )
    spec = folder.spec()
    space = parse_space(spec.space, spec.fixed)
    study, storage = open_study(folder, spec, space)
    for _ in range(MEDIAN_STARTUP_TRIALS):
        study.add_trial(optuna.trial.create_trial(value=0.9, intermediate_values={e: 0.9 for e in range(1, 6)}))
    return SweepWorker(folder, spec, space, study, storage)


def _training_trial(worker: SweepWorker, tmp_path: Path) -> tuple[int, RunFolder]:
    """A trial the worker owns, whose "trainer" (this process) is running it."""
    trial = worker.study.ask()
    run = RunFolder(create_run(tiny_config(Path(worker.spec.fixed["data"])), folder=tmp_path / f"run-{trial.number}"))
    run.write_status(state=RunState.RUNNING, pid=os.getpid(), pid_start=process_start_time(os.getpid()))
    worker.own[trial.number] = (trial._trial_id, run.path)
    return trial.number, run


def _validated(run: RunFolder, epoch: int, value: float | None) -> None:
    run.write_status(validated_epoch=epoch, last_metrics={"val_loss": 0.5, "val_roc_auc": value})


def test_each_validation_is_recorded_once_and_a_hopeless_trial_is_pruned(worker: SweepWorker, tmp_path: Path) -> None:
    good, good_run = _training_trial(worker, tmp_path)
    bad, bad_run = _training_trial(worker, tmp_path)
    for epoch in range(1, MEDIAN_FIRST_EPOCH + 1):
        _validated(good_run, epoch, 0.95)
        _validated(bad_run, epoch, 0.3)
        worker._finish()
        worker._finish()  # a second poll before the next validation judges nothing again
        assert Verdict.read(good_run) == Verdict(epoch, prune=False)
        assert Verdict.read(bad_run) == Verdict(epoch, prune=epoch >= MEDIAN_FIRST_EPOCH)  # below the median
    values = {t.number: t.intermediate_values for t in worker.study.get_trials()}
    assert values[good] == {1: 0.95, 2: 0.95} and values[bad] == {1: 0.3, 2: 0.3}


def test_an_n_a_value_is_neither_recorded_nor_answered(worker: SweepWorker, tmp_path: Path) -> None:
    number, run = _training_trial(worker, tmp_path)
    _validated(run, 1, None)  # the trainer does not wait for a verdict on it
    worker._finish()
    assert Verdict.read(run) is None and worker.study.get_trials()[number].intermediate_values == {}


def test_a_worker_that_takes_a_trial_over_judges_its_next_report(worker: SweepWorker, tmp_path: Path) -> None:
    """No port or token to rewrite: the successor reads the same status file."""
    number, run = _training_trial(worker, tmp_path)
    _validated(run, 1, 0.95)
    worker._finish()
    successor = SweepWorker(worker.folder, worker.spec, worker.space, worker.study, worker.storage)
    successor.own[number] = worker.own.pop(number)
    successor._finish()  # epoch 1 again: recorded already, answered again (its trainer may still wait)
    assert Verdict.read(run) == Verdict(1, prune=False)
    _validated(run, 2, 0.96)
    successor._finish()
    assert Verdict.read(run) == Verdict(2, prune=False)
    assert worker.study.get_trials()[number].intermediate_values == {1: 0.95, 2: 0.96}


def test_a_report_on_a_trial_failed_meanwhile_is_answered_go_on(
    worker: SweepWorker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    number, run = _training_trial(worker, tmp_path)
    worker.study.tell(number, state=optuna.trial.TrialState.FAIL)  # say, a stale heartbeat
    _validated(run, 2, 0.1)
    with caplog.at_level(logging.WARNING, logger="autotag.sweeps"):
        worker._finish()
    assert Verdict.read(run) == Verdict(2, prune=False)
    assert f"trial {number}: its epoch 2 was not recorded" in caplog.text


def test_the_last_report_of_an_ended_run_is_recorded_without_a_verdict(worker: SweepWorker, tmp_path: Path) -> None:
    number, run = _training_trial(worker, tmp_path)
    _validated(run, 3, 0.93)
    run.write_status(state=RunState.COMPLETED, ended=time.time(), best_val_metrics={"val_roc_auc": 0.93})
    worker._finish()
    trial = worker.study.get_trials()[number]
    assert trial.intermediate_values == {3: 0.93} and trial.value == pytest.approx(0.93)
    assert Verdict.read(run) is None and number not in worker.own


def test_a_worker_id_round_trips_through_its_key() -> None:
    me = WorkerId.this()
    assert WorkerId.parse(me.key) == me and not me.dead_here()
    assert WorkerId.parse("no key") is None
