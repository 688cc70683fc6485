"""A trial's trainer reports to its worker's desk, which records the value and answers prune or not."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import optuna
import pytest

from autotag.sweeps.desk import ReportDesk
from autotag.sweeps.study import MEDIAN_FIRST_EPOCH, MEDIAN_STARTUP_TRIALS, make_pruner, open_storage
from autotag.training.trial import TrialLink, report


@pytest.fixture
def study(tmp_path: Path) -> optuna.Study:
    """A SQLite study (as a sweep's) whose median pruner has enough finished trials to judge by."""
    study = optuna.create_study(
        storage=open_storage(f"sqlite:///{tmp_path / 'study.db'}"),
        pruner=make_pruner("median", 10),
        direction="maximize",
    )
    for _ in range(MEDIAN_STARTUP_TRIALS):
        study.add_trial(
            optuna.trial.create_trial(value=0.9, intermediate_values={e: 0.9 for e in range(1, 6)}),
        )
    return study


@pytest.fixture
def desk(study: optuna.Study) -> Iterator[ReportDesk]:
    desk = ReportDesk(study, threading.Lock())
    yield desk
    desk.close()


def _link(path: Path, study: optuna.Study, desk: ReportDesk) -> Path:
    trial = study.ask()
    TrialLink(
        storage="sqlite:///study.db",
        study=study.study_name,
        trial_id=trial._trial_id,
        number=trial.number,
        sweep=str(path.parent),
        metric="val_roc_auc",
        pruner="median",
        port=desk.port,
        token=desk.token,
    ).write(path)
    return path


def _reported(study: optuna.Study) -> dict[int, float]:
    return study.trials[-1].intermediate_values


def test_a_report_is_recorded_and_a_hopeless_trial_is_told_to_stop(
    tmp_path: Path, study: optuna.Study, desk: ReportDesk
) -> None:
    good = _link(tmp_path / "good.json", study, desk)
    assert report(good, 1, 0.95) is False
    assert report(good, MEDIAN_FIRST_EPOCH, 0.95) is False  # above the median of the finished trials
    assert study.trials[-1].intermediate_values == {1: 0.95, MEDIAN_FIRST_EPOCH: 0.95}
    bad = _link(tmp_path / "bad.json", study, desk)
    assert report(bad, 1, 0.2) is False  # before the pruner's first epoch: never pruned
    assert report(bad, MEDIAN_FIRST_EPOCH, 0.3) is True  # its best so far is below the median
    assert _reported(study) == {1: 0.2, MEDIAN_FIRST_EPOCH: 0.3}


def test_a_report_without_the_token_is_refused_and_changes_nothing(
    tmp_path: Path, study: optuna.Study, desk: ReportDesk, caplog: pytest.LogCaptureFixture
) -> None:
    link = _link(tmp_path / "trial.json", study, desk)
    replace(TrialLink.read(link), token="guessé").write(link)  # not even ASCII
    with caplog.at_level(logging.WARNING):
        assert report(link, MEDIAN_FIRST_EPOCH + 1, 0.0) is False
    assert _reported(study) == {}
    assert "token" in caplog.text and "trains on" in caplog.text


def test_with_no_worker_listening_the_trial_trains_on_and_says_so(
    tmp_path: Path,
    study: optuna.Study,
    desk: ReportDesk,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    link = _link(tmp_path / "trial.json", study, desk)
    desk.close()  # the worker died
    monkeypatch.setattr("autotag.training.trial.RETRY_S", 0.01)
    with caplog.at_level(logging.WARNING):
        assert report(link, 3, 0.1) is False
    assert "epoch 3" in caplog.text and "did not reach the sweep (no worker at port" in caplog.text
    assert report(tmp_path / "no-trial.json", 3, 0.1) is False  # no link at all


def test_each_report_goes_where_trial_json_says_now(tmp_path: Path, study: optuna.Study, desk: ReportDesk) -> None:
    """A worker that takes a trial over rewrites its trial.json; the next report reaches it."""
    link = _link(tmp_path / "trial.json", study, desk)
    assert report(link, 1, 0.95) is False
    desk.close()
    successor = ReportDesk(study, threading.Lock())
    try:
        replace(TrialLink.read(link), port=successor.port, token=successor.token).write(link)
        assert report(link, 2, 0.96) is False
    finally:
        successor.close()
    assert _reported(study) == {1: 0.95, 2: 0.96}


def test_a_report_on_a_finished_trial_is_answered_with_the_reason(
    tmp_path: Path, study: optuna.Study, desk: ReportDesk, caplog: pytest.LogCaptureFixture
) -> None:
    link = _link(tmp_path / "trial.json", study, desk)
    study.tell(study.trials[-1].number, state=optuna.trial.TrialState.FAIL)  # say, a stale heartbeat
    with caplog.at_level(logging.WARNING):
        assert report(link, 2, 0.5) is False
    assert "finished" in caplog.text


def test_the_trainer_side_imports_no_optuna_nor_sqlalchemy() -> None:
    """What the desk is for: a trial's trainer starts without Optuna's storage (about 1 s)."""
    code = (
        "import sys, autotag.training.fit, autotag.training.callbacks, autotag.training.trial\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('optuna', 'sqlalchemy', 'alembic')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
