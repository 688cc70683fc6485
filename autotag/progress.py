"""Progress of a training process, written into its run folder's status.json.

The dashboard and `runs list` read only status.json for progress (never the event
files), so it carries epoch, step, best val_loss and a throughput-based ETA.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import lightning as L

from autotag.cache import Progress
from autotag.runs import write_status

log = logging.getLogger("autotag.train")


def cache_progress(run_dir: Path, every: float = 1.0) -> Progress:
    """A (done, total) callback for the feature cache build, throttled to one write per `every` s."""
    last = 0.0

    def report(done: int, total: int) -> None:
        nonlocal last
        now = time.monotonic()
        if done == total or now - last >= every:
            last = now
            write_status(run_dir, phase=f"computing features {done}/{total}", cache_done=done, cache_total=total)
            if done == total:
                log.info("features computed for %d clips", total)

    return report


def _flush(trainer: L.Trainer) -> None:
    for logger in trainer.loggers:
        flush = getattr(getattr(logger, "experiment", None), "flush", None)
        if flush is not None:
            flush()


class StatusCallback(L.Callback):
    """Writes epoch/step progress and the best val_loss so far into status.json."""

    def __init__(self, run_dir: Path, every: float = 2.0) -> None:
        self.run_dir, self.every = run_dir, every
        self._last = 0.0
        self._flushed = False

    def _write(self, trainer: L.Trainer, **extra: Any) -> None:
        write_status(
            self.run_dir,
            epoch=trainer.current_epoch + 1,  # 1-based: the epoch in progress, or just validated
            global_step=trainer.global_step,
            max_epochs=trainer.max_epochs,
            steps_per_epoch=trainer.num_training_batches,
            **extra,
        )

    def _first_flush(self, trainer: L.Trainer) -> None:
        """Flush once the first train_loss point is logged, not at the next timed flush.

        Lightning logs a step's metrics after the `on_train_batch_end` hooks, so the point
        of step `log_every_n_steps` is written by the next batch's start, or by the
        validation that follows when it was the epoch's last batch.
        """
        if not self._flushed and trainer.is_global_zero and trainer.global_step >= trainer.log_every_n_steps:
            self._flushed = True
            _flush(trainer)

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any) -> None:
        self._first_flush(trainer)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._first_flush(trainer)

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if not trainer.is_global_zero:
            return
        now = time.monotonic()
        if now - self._last >= self.every:
            self._last = now
            self._write(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        # ModelCheckpoint runs after this callback, so its best score is one epoch behind.
        ckpt = trainer.checkpoint_callback
        seen = [metrics.get("val_loss")]
        if ckpt is not None and ckpt.best_model_score is not None:
            seen.append(float(ckpt.best_model_score))
        best = min((v for v in seen if v is not None), default=None)
        self._write(trainer, best_val_loss=best, last_metrics=metrics)
        _flush(trainer)  # each epoch's validation point shows up at once
        shown = " ".join(f"{k} {v:.4f}" for k, v in sorted(metrics.items()))
        log.info("epoch %d/%d %s", trainer.current_epoch + 1, trainer.max_epochs, shown)
