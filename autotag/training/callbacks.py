"""Callbacks of a training process: its progress into status.json, and a frozen backbone.

The dashboard and `runs list` read only status.json for progress (never the event
files), so it carries epoch, step, best val_loss and the clock an ETA is computed from:
`StatusCallback` during training, `cache_progress` while the feature cache is built.
`FreezeBackbone` trains only the output layer of a run started from another.
`TimeBudget` ends training when its minutes are spent, as `max_epochs` ends it by epochs.
`PruneTrial` asks, after every validation of a sweep's trial, the verdict of the worker
that owns the trial (`autotag.training.trial`): the worker has read the epoch's metric from
status.json, recorded it in the study and asked the study's pruner, as optuna_integration's
`PyTorchLightningPruningCallback` asks it. Unlike that callback, which raises `TrialPruned`
out of `trainer.fit` before the epoch's checkpoint is written, it asks the trainer to stop
after the epoch, so a pruned run ends like an early-stopped one: checkpoints written, state
"pruned". Under DDP rank 0 asks and every rank stops together.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch

from autotag.data.cache import Progress
from autotag.store.files import finite_or_none
from autotag.store.run_folder import RunFolder
from autotag.training.finetune import fresh_layers
from autotag.training.trial import TrialLink, await_verdict

log = logging.getLogger("autotag.training.fit")  # the epoch lines read as the fit's own


def cache_progress(run_dir: Path, every: float = 1.0) -> Progress:
    """A (done, total) callback for the feature cache build, throttled to one write per `every` s."""
    last, run = 0.0, RunFolder(run_dir)

    def report(done: int, total: int) -> None:
        nonlocal last
        now = time.monotonic()
        if done == total or now - last >= every:
            last = now
            run.write_status(phase=f"computing features {done}/{total}", cache_done=done, cache_total=total)
            if done == total:
                log.info("features computed for %d clips", total)

    return report


def finite(value: torch.Tensor | float) -> float | None:
    """A logged metric as status.json stores it: a float, or None (shown "n/a") when it is
    NaN or infinite, as a macro AUC is when no tag of the split can be ranked."""
    return finite_or_none(float(value))


def _flush(trainer: L.Trainer) -> None:
    for logger in trainer.loggers:
        flush = getattr(getattr(logger, "experiment", None), "flush", None)
        if flush is not None:
            flush()


class StatusCallback(L.Callback):
    """Writes epoch/step progress and the best val_loss so far into status.json."""

    def __init__(self, run_dir: Path, every: float = 2.0) -> None:
        self.run, self.every = RunFolder(run_dir), every
        self._last = 0.0
        self._first_logged = False

    def _write(self, trainer: L.Trainer, **extra: Any) -> None:
        self.run.write_status(
            epoch=trainer.current_epoch + 1,  # 1-based: the epoch in progress, or just validated
            global_step=trainer.global_step,
            max_epochs=trainer.max_epochs,
            steps_per_epoch=trainer.num_training_batches,
            **extra,
        )

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:  # the ETA's clock: setup and the feature cache are behind us
            self._write(trainer, train_clock=[time.time(), trainer.global_step])

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, *args: Any) -> None:
        if not trainer.is_global_zero:
            return
        if not self._first_logged:
            self._first_logged = True
            self._log_first_loss(trainer, outputs)
        now = time.monotonic()
        if now - self._last >= self.every:
            self._last = now
            self._write(trainer)

    def _log_first_loss(self, trainer: L.Trainer, outputs: Any) -> None:
        """Puts the first batch's train_loss on disk at once, so the live curve starts at once.

        Lightning logs every `log_every_n_steps` batches (up to 10: a whole first epoch of
        the quick demo) and TensorBoard flushes every few seconds. One extra point, at the
        step Lightning would have given it, costs nothing in throughput. A resumed run gets
        one too: its curve moves on at once. (The loss is the batch's own: there is no
        gradient accumulation to divide it.)
        """
        step = trainer.global_step - 1  # the optimizer has stepped: Lightning numbers the batch before
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if not isinstance(loss, torch.Tensor) or (step + 1) % trainer.log_every_n_steps == 0:
            return  # Lightning logs this step itself
        for logger in trainer.loggers:
            logger.log_metrics({"train_loss": float(loss.detach())}, step=step)
        _flush(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        # Not the per-tag curves (PER_TAG_AUC): fifty tags' values are for the chart, not this line.
        metrics = {k: finite(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1 and "/" not in k}
        # ModelCheckpoint runs after this callback, so its best score is one epoch behind.
        ckpt = trainer.checkpoint_callback
        current = metrics.get("val_loss")
        previous = finite(ckpt.best_model_score) if ckpt is not None and ckpt.best_model_score is not None else None
        best = min((v for v in (current, previous) if v is not None), default=None)
        extra: dict[str, Any] = {}
        if current is not None and (previous is None or current < previous):  # ModelCheckpoint's rule: strictly lower
            # The epoch whose checkpoint is the run's best: a sweep scores a trial by these.
            extra["best_val_metrics"] = {k: v for k, v in metrics.items() if k.startswith("val_")}
        why = getattr(pl_module, "val_note", None) if None in metrics.values() else None
        epoch = trainer.current_epoch + 1
        self._write(trainer, best_val_loss=best, last_metrics=metrics, validated_epoch=epoch, val_note=why, **extra)
        _flush(trainer)  # each epoch's validation point shows up at once
        shown = " ".join(f"{k} {'n/a' if v is None else f'{v:.4f}'}" for k, v in sorted(metrics.items()))
        log.info("epoch %d/%d %s%s", epoch, trainer.max_epochs, shown, f" ({why})" if why else "")


class FreezeBackbone(L.Callback):
    """Trains only the new layers (output layer, tempo branch) for the first `epochs` epochs, then everything.

    An equivalent of Lightning's `BackboneFinetuning` that needs no `backbone` attribute
    and no optimizer surgery: while frozen, the backbone's gradients are dropped after
    each backward pass, and Adam skips a parameter without a gradient. The optimizer's
    parameter groups never change, so a run resumes mid-freeze or after it as it was.
    """

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def on_after_backward(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch >= self.epochs:
            return
        fresh = fresh_layers(pl_module)
        for name, param in pl_module.named_parameters():
            if not name.startswith(fresh):
                param.grad = None


class TimeBudget(L.Callback):
    """Ends training once `minutes` of it have passed, and not before the first validation.

    A CPU user asks for the best model in 20 minutes, not for 100 epochs. Lightning's own
    `Timer` (`max_time`) may stop inside the first epoch, before any checkpoint exists to
    test; this one lets the first validation happen, so a run that ran out of time always
    has a best checkpoint. The clock starts when training starts (decoding the audio and a
    resumed run's earlier sessions are not counted). Under DDP rank 0's clock decides for
    every rank, as in `Timer`.
    """

    def __init__(self, minutes: float) -> None:
        self.seconds = minutes * 60.0
        self.started: float | None = None
        self.validated = False
        self.spent = False  # True once the budget ended training

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.started, self.validated, self.spent = time.monotonic(), False, False

    def _check(self, trainer: L.Trainer) -> None:
        over = self.started is not None and time.monotonic() - self.started >= self.seconds
        if trainer.strategy.broadcast(over and self.validated):
            trainer.should_stop = self.spent = True

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        self._check(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.validated = True
            self._check(trainer)


class PruneTrial(L.Callback):
    """Waits after each validation for the worker's verdict on `link.metric`; stops training when it says prune.

    Reports of `link.metric` are judged only when the value is finite (a pruner would take
    NaN for the worst value and prune); a sweep whose pruner is "none" is never waited for:
    its worker records the values all the same. Nor is an epoch after which training ends
    anyway (the last, or early stopping's): a trial that ran to its end is complete and
    tested, not "pruned" with nothing saved for it.
    """

    def __init__(self, run_dir: Path, link: TrialLink) -> None:
        self.run, self.link = RunFolder(run_dir), link
        self.pruned_at: int | None = None  # the 1-based epoch after which the trial was pruned

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        prune = False
        if trainer.is_global_zero:
            epoch, value = trainer.current_epoch + 1, trainer.callback_metrics.get(self.link.metric)
            number = finite(value) if value is not None else None
            ending = trainer.should_stop or epoch >= (trainer.max_epochs or epoch + 1)
            if number is not None and self.link.pruner != "none" and not ending:
                prune = await_verdict(self.run, epoch)  # status.json, written just before, has the value
            elif value is not None and number is None:  # NaN or inf: the worker does not report it
                metric = self.link.metric
                log.warning("epoch %d's %s is n/a (%s): not reported to the sweep", epoch, metric, float(value))
        prune = trainer.strategy.broadcast(prune)
        if prune:
            trainer.should_stop = True
            self.pruned_at = trainer.current_epoch + 1
            log.info("the sweep's %s pruner ended this trial after epoch %d", self.link.pruner, self.pruned_at)
