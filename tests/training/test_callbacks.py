"""Callbacks of a training process, driven by a stand-in trainer: a metric that cannot be computed."""

import logging
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from autotag.store.run_folder import RunFolder
from autotag.training import callbacks
from autotag.training.callbacks import PruneTrial, StatusCallback, TimeBudget
from autotag.training.trial import TrialLink

NOTE = "no tag in the valid split has both a positive and a negative clip, so ROC-AUC and PR-AUC are n/a"


@pytest.fixture
def fit_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """The fit's log lines, also after a CLI test in this process stopped autotag's from propagating."""
    logger = logging.getLogger("autotag.training.fit")
    old = logger.level
    logger.addHandler(caplog.handler)
    logger.setLevel(logging.INFO)
    yield caplog
    logger.removeHandler(caplog.handler)
    logger.setLevel(old)


def _trainer(**metrics: float) -> SimpleNamespace:
    """What the callbacks read of a trainer after a validation of epoch 1."""
    return SimpleNamespace(
        sanity_checking=False,
        is_global_zero=True,
        callback_metrics={k: torch.tensor(v) for k, v in metrics.items()},
        checkpoint_callback=None,
        loggers=[],
        current_epoch=0,
        global_step=10,
        max_epochs=2,
        num_training_batches=10,
        log_every_n_steps=10,
        should_stop=False,
        strategy=SimpleNamespace(broadcast=lambda value: value),
    )


def test_a_nan_metric_is_stored_as_null_and_logged_as_n_a_with_its_reason(
    tmp_path: Path, fit_log: pytest.LogCaptureFixture
) -> None:
    trainer = _trainer(val_loss=0.69, val_roc_auc=float("nan"), val_pr_auc=float("nan"))
    StatusCallback(tmp_path).on_validation_end(trainer, SimpleNamespace(val_note=NOTE))
    status = RunFolder(tmp_path).read_status()
    assert status.last_metrics == {"val_loss": pytest.approx(0.69), "val_roc_auc": None, "val_pr_auc": None}
    assert status.best_val_loss == pytest.approx(0.69) and status.best_val_metrics["val_roc_auc"] is None
    assert f"epoch 1/2 val_loss 0.6900 val_pr_auc n/a val_roc_auc n/a ({NOTE})" in fit_log.text


def test_a_nan_sweep_metric_is_not_waited_for_and_prunes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fit_log: pytest.LogCaptureFixture
) -> None:
    asked: list[int] = []
    monkeypatch.setattr(callbacks, "await_verdict", lambda run, epoch: asked.append(epoch) or True)
    link = TrialLink("sqlite:///s.db", "s", trial_id=1, number=0, sweep="s", metric="val_roc_auc", pruner="median")
    prune = PruneTrial(tmp_path, link)
    trainer = _trainer(val_loss=0.69, val_roc_auc=float("nan"))
    prune.on_validation_end(trainer, SimpleNamespace(val_note=NOTE))
    assert asked == [] and not trainer.should_stop and prune.pruned_at is None
    assert "epoch 1's val_roc_auc is n/a (nan): not reported to the sweep" in fit_log.text
    prune.on_validation_end(_trainer(val_roc_auc=0.75), SimpleNamespace(val_note=None))
    assert asked == [1] and prune.pruned_at == 1  # a finite value is judged, and the verdict counts


def test_a_sweep_without_a_pruner_never_waits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(callbacks, "await_verdict", lambda run, epoch: pytest.fail("waited for a verdict"))
    link = TrialLink("sqlite:///s.db", "s", trial_id=1, number=0, sweep="s", metric="val_loss", pruner="none")
    trainer = _trainer(val_loss=0.69)
    PruneTrial(tmp_path, link).on_validation_end(trainer, SimpleNamespace(val_note=None))
    assert not trainer.should_stop


def test_the_validated_epoch_goes_to_status_json_with_its_metrics(tmp_path: Path) -> None:
    """What a sweep's worker judges a trial by: the epoch and the metrics of its last validation."""
    trainer = _trainer(val_loss=0.5)
    trainer.current_epoch = 2
    StatusCallback(tmp_path).on_validation_end(trainer, SimpleNamespace(val_note=None))
    status = RunFolder(tmp_path).read_status()
    assert status.validated_epoch == 3 and status.last_metrics == {"val_loss": 0.5}


def test_the_time_budget_waits_for_a_first_validation_then_stops() -> None:
    budget = TimeBudget(minutes=0.0)
    trainer = SimpleNamespace(should_stop=False, sanity_checking=False, strategy=SimpleNamespace(broadcast=bool))
    budget.on_train_start(trainer, None)
    budget.on_train_batch_end(trainer, None)
    assert not trainer.should_stop  # no checkpoint to test yet
    budget.on_validation_end(trainer, None)
    assert trainer.should_stop and budget.spent


def test_an_epoch_after_which_training_ends_anyway_is_never_pruned(monkeypatch: pytest.MonkeyPatch) -> None:
    """The last epoch, or one after which early stopping ends the run: it completes and is tested."""
    monkeypatch.setattr(callbacks, "await_verdict", lambda run, epoch: pytest.fail("waited for a verdict"))
    link = TrialLink("sqlite:///s.db", "s", trial_id=1, number=0, sweep="s", metric="val_loss", pruner="median")
    last = _trainer(val_loss=0.9)
    last.current_epoch = 1  # of max_epochs 2
    prune = PruneTrial(Path("."), link)
    prune.on_validation_end(last, SimpleNamespace(val_note=None))
    early = _trainer(val_loss=0.9)
    early.should_stop = True  # EarlyStopping's hook ran first
    prune.on_validation_end(early, SimpleNamespace(val_note=None))
    assert prune.pruned_at is None
