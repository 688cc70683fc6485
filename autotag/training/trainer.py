"""The Lightning pieces of a run, built from its config in one place.

`train.fit` uses them, and so does the throughput benchmark, so what is measured is
exactly what users run.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger

from autotag.config import TrainConfig
from autotag.store.run_folder import RunFolder
from autotag.text import counted
from autotag.training.callbacks import FreezeBackbone, StatusCallback, TimeBudget
from autotag.training.checkpoint_io import AtomicCheckpointIO
from autotag.training.module import TaggingModule
from autotag.training.probe import ProbeModule

#: Log scalars at most this often (in steps): per-step logging costs throughput.
LOG_EVERY_N_STEPS = 10
#: Seconds between TensorBoard flushes: live curves lag training by at most this.
FLUSH_SECS = 5


#: Lightning's lines that are no news to a user reading train.log: its tip to install a cloud
#: logger, and the two lines of every checkpoint it restores (testing, predicting: three
#: times each at the end of a run), which autotag's own "resuming from" and "testing" say once.
NOT_NEWS = ("💡 Tip:", "Restoring states from the checkpoint path at", "Loaded model weights from the checkpoint at")


def _news(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith(NOT_NEWS)


logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_news)


class RunCheckpoint(ModelCheckpoint):
    """ModelCheckpoint that follows its run folder when the folder was moved or copied.

    Lightning keeps the absolute paths of the best and last checkpoints in the state it
    saves. A run restored from a backup, or on a volume mounted elsewhere, would resume
    with paths into a folder that is gone, and Lightning itself, seeing another dirpath,
    keeps only the stale best path and forgets the best score and `best_k_models` (so a
    better epoch would not replace the old best file). The paths that lay in the saved
    checkpoint folder are rebased onto this one before Lightning reads them.
    """

    @property
    def state_key(self) -> str:
        # Lightning files a callback's state under its class name: keep ModelCheckpoint's, so
        # the checkpoints of runs saved before this class existed restore into it too.
        return super().state_key.replace(type(self).__qualname__, ModelCheckpoint.__qualname__, 1)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        saved = state_dict.get("dirpath")
        if saved and self.dirpath and saved != self.dirpath:
            state_dict = _rebased(state_dict, str(saved), str(self.dirpath))
        super().load_state_dict(state_dict)


def _rebased(state: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    """`state` with every path inside folder `old` moved into folder `new`."""

    def move(path: str) -> str:
        if not path or not Path(path).is_relative_to(old):
            return path  # none yet, or a file that was never in the checkpoint folder
        return str(Path(new) / Path(path).relative_to(old))

    moved = {**state, "dirpath": new}
    for key in ("best_model_path", "last_model_path", "kth_best_model_path"):
        if key in state:
            moved[key] = move(state[key])
    if "best_k_models" in state:
        moved["best_k_models"] = {move(path): score for path, score in state["best_k_models"].items()}
    return moved


def build_module(config: TrainConfig, labels: list[str]) -> TaggingModule:
    """The run's module; a linear probe's is fed embeddings, which no augmentation applies to."""
    probe = config.transfer == "linear-probe"
    return (ProbeModule if probe else TaggingModule)(
        model_name=config.model,
        labels=labels,
        chunk_seconds=float(config.chunk_seconds),
        level=config.level,
        tempo=bool(config.tempo),
        lr=config.lr,
        weight_decay=config.weight_decay,
        augment=None if probe else config.augment_settings(),
        backbone_lr_factor=config.backbone_lr_factor,
        **config.feature_settings(),
    )


def build_trainer(
    config: TrainConfig, run_dir: Path, train_batches: int, extra_callbacks: Sequence[Callback] = ()
) -> tuple[L.Trainer, RunCheckpoint]:
    """The run's Trainer: EarlyStopping and ModelCheckpoint on val_loss, TensorBoard in tb/.

    Args:
        train_batches: Batches per training epoch, to log at least once per epoch.
    """
    run = RunFolder(run_dir)
    checkpoint = RunCheckpoint(
        dirpath=run.checkpoints,
        filename=f"{RunFolder.BEST_PREFIX}epoch{{epoch:03d}}-step{{step:06d}}",
        auto_insert_metric_name=False,
        monitor="val_loss",
        mode="min",
        save_top_k=1,
        save_last=True,
    )
    trainer = L.Trainer(
        accelerator=config.accelerator,
        devices=config.devices,
        num_nodes=config.num_nodes,
        strategy=config.strategy,
        precision=config.precision,
        max_epochs=config.max_epochs,
        callbacks=[
            EarlyStopping(monitor="val_loss", mode="min", patience=config.patience),
            checkpoint,
            StatusCallback(run_dir),
            *([FreezeBackbone(config.freeze_epochs)] if config.freeze_epochs else []),
            *([TimeBudget(config.max_minutes)] if config.max_minutes else []),
            *extra_callbacks,
        ],
        # flush_secs: the dashboard's live curves read the event files; the default is 120 s.
        logger=TensorBoardLogger(
            save_dir=str(run.tb.parent), name="", version=run.tb.name, default_hp_metric=False, flush_secs=FLUSH_SECS
        ),
        log_every_n_steps=max(1, min(LOG_EVERY_N_STEPS, train_batches)),
        enable_progress_bar=sys.stderr.isatty(),
        enable_model_summary=False,
        plugins=[AtomicCheckpointIO()],
    )
    return trainer, checkpoint


def why_it_ended(trainer: L.Trainer, config: TrainConfig) -> str:
    """What ended training, in words for status.json, metrics.json and the Runs page."""
    for callback in trainer.callbacks:
        if isinstance(callback, TimeBudget) and callback.spent:
            return f"time budget of {config.max_minutes:.3g} min spent"
        if isinstance(callback, EarlyStopping) and callback.stopped_epoch:
            return f"early stopping: val_loss did not improve for {counted(config.patience, 'epoch')}"
    return f"max_epochs ({config.max_epochs}) reached"
