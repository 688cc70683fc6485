"""`fit(config, run_dir)`: train, keep the best checkpoint, evaluate it on the test split.

The trainer writes its own progress and final state into status.json so that anyone
(the CLI, the dashboard, another process) can follow a run from the folder alone.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from autotag.config import TrainConfig, load_config, save_config
from autotag.paths import absolute
from autotag.store.files import write_json_atomic
from autotag.store.job import RunState
from autotag.store.procs import process_start_time
from autotag.store.run_folder import RunFolder, RunStatus
from autotag.training.distributed import is_rank_zero

log = logging.getLogger("autotag.training.fit")


def _plain(value: Any) -> Any:
    """JSON-safe copy: NaN becomes None (JSON has no NaN), tensors become floats."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _attach_log_file(run_dir: Path) -> tuple[logging.Handler, int]:
    """Send autotag's and Lightning's log lines to train.log; returns what to restore."""
    handler = logging.FileHandler(RunFolder(run_dir).log, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in ("autotag", "lightning.pytorch"):
        logging.getLogger(name).addHandler(handler)
    ours = logging.getLogger("autotag")
    old_level = ours.level
    if ours.getEffectiveLevel() > logging.INFO:  # train.log must get the data report and epoch lines
        ours.setLevel(logging.INFO)
    return handler, old_level


def _detach_log_file(handler: logging.Handler, old_level: int) -> None:
    for name in ("autotag", "lightning.pytorch"):
        logging.getLogger(name).removeHandler(handler)
    logging.getLogger("autotag").setLevel(old_level)
    handler.close()


class RunStopped(Exception):
    """Training ended early on request (SIGTERM or Ctrl-C); the run is resumable."""


def _is_stop(exc: BaseException) -> bool:
    """SIGTERM or Ctrl-C. Lightning turns a Ctrl-C inside `trainer.fit` into `sys.exit(1)`
    after its graceful shutdown (lightning/pytorch/trainer/call.py), so a SystemExit raised
    while handling a KeyboardInterrupt is a stop too, not a failure.

    Nothing is imported here: a Ctrl-C while torch or Lightning was being imported leaves
    them half-initialised, and importing again would fail. An exception of Lightning's
    can only have been raised once its module was loaded.
    """
    if isinstance(exc, KeyboardInterrupt):
        return True
    if isinstance(exc, SystemExit) and isinstance(exc.__context__, KeyboardInterrupt):
        return True
    lightning_errors = sys.modules.get("lightning.pytorch.utilities.exceptions")
    sigterm = getattr(lightning_errors, "SIGTERMException", None)
    return sigterm is not None and isinstance(exc, sigterm)


def fit(
    config: TrainConfig | str | Path,
    run_dir: str | Path,
    log_file: bool = True,
    resume_from: str | Path | None = None,
) -> dict[str, Any]:
    """Train `config` in `run_dir` (created with `runs.create_run`, or any empty folder).

    Args:
        config: A config or the path of a config.yaml.
        run_dir: The run folder; config.yaml is written there when missing.
        log_file: Also write log lines into train.log (off when the caller already
            redirects this process's output there).
        resume_from: A verified checkpoint of this run to continue from (same run,
            same curves, early-stopping state kept).

    Under DDP every process of the run calls this with the same folder; only rank 0
    writes to it (autotag.training.distributed says which process is which).

    Returns:
        The test metrics written to metrics.json (a sweep trial that its pruner ended: the epoch
        it ended after; nothing is tested).

    Raises:
        RunStopped: SIGTERM or Ctrl-C ended training; status.json says "stopped".
    """
    config = config if isinstance(config, TrainConfig) else load_config(absolute(config))
    run_dir = absolute(run_dir)
    resume = absolute(resume_from) if resume_from else None
    folder = _RankFolder(RunFolder(run_dir), writes=is_rank_zero())  # under DDP, rank 0 owns the folder
    attached = None
    try:  # from the first write on: a Ctrl-C at any moment ends the run "stopped", never "running"
        if folder.writes:
            run_dir.mkdir(parents=True, exist_ok=True)
            if not folder.run.config.is_file():
                save_config(config, folder.run.config)
            folder.run.sweep_orphans()  # temp files of an earlier process of this run that was killed
            attached = _attach_log_file(run_dir) if log_file else None
            folder.status(
                state=RunState.RUNNING,
                pid=os.getpid(),
                pid_start=process_start_time(os.getpid()),
                started=time.time(),
                max_epochs=config.max_epochs,
                ended=None,
                error=None,
                train_clock=None,  # a resumed run's old clock would count the time it was stopped
                ended_by=None,
            )
        else:
            logging.getLogger("autotag").setLevel(logging.WARNING)  # rank 0 already logs every line once
        metrics = _fit(config, folder, resume)
    except BaseException as exc:
        # Under DDP, Stop signals every rank, and the rank that ends first closes the
        # collective's connection under the others: their error is part of the stop.
        if _is_stop(exc) or folder.run.stop_request.exists():
            saved = any(folder.run.checkpoints.glob("*.ckpt")) if folder.writes else False
            after = "; resume continues from its last checkpoint" if saved else " before its first checkpoint"
            log.info("run stopped on request%s", after)
            folder.final_status(state=RunState.STOPPED, ended=time.time())
            raise RunStopped(str(run_dir)) from None
        reason = f"{type(exc).__name__}: {exc}"
        if folder.writes:
            log.error("run failed: %s", reason)
        folder.final_status(state=RunState.FAILED, error=reason, ended=time.time())
        raise
    finally:
        if attached:
            _detach_log_file(*attached)
    return metrics


class _RankFolder:
    """The run folder as one process of the run sees it: only rank 0 writes to it."""

    def __init__(self, run: RunFolder, writes: bool) -> None:
        self.run, self.writes = run, writes

    def status(self, **fields: Any) -> None:
        if self.writes:
            self.run.write_status(**fields)

    def final_status(self, **fields: Any) -> None:
        """The state a run ends in, recorded if the folder can take it: a folder that cannot
        (gone, full, read-only: maybe why the run ended) must not hide the run's own error."""
        try:
            self.status(**fields)
        except OSError as exc:
            log.error("the run's end (%s) could not be recorded: %s", fields.get("state"), exc)

    def json(self, file: Path, data: Any) -> None:
        if self.writes:
            write_json_atomic(file, data)


def _fit(config: TrainConfig, folder: _RankFolder, resume_from: Path | None) -> dict[str, Any]:
    import lightning as L
    import torch

    from autotag.data.datamodule import TaggingDataModule
    from autotag.data.prepare import prepare_features
    from autotag.training.callbacks import PruneTrial, cache_progress
    from autotag.training.finetune import check_init_source, init_from_run
    from autotag.training.probe import EmbeddingDataModule
    from autotag.training.trainer import build_module, build_trainer, why_it_ended
    from autotag.training.trial import TrialLink

    run_dir = folder.run.path
    check_init_source(config)
    folder.status(phase="preparing data")
    progress = cache_progress(run_dir) if folder.writes else None
    report, dataset, cache = prepare_features(config, progress=progress)
    for line in report.summary_lines():
        log.info("data: %s", line)
    folder.json(folder.run.data_report, report.to_dict())
    folder.json(folder.run.labels, dataset.labels)

    if torch.cuda.is_available():
        torch.set_float32_matmul_precision("high")  # TF32 matmuls on tensor cores; convs already use TF32
    L.seed_everything(config.seed, workers=True, verbose=False)
    module = build_module(config, dataset.labels)
    datamodule = TaggingDataModule(config, dataset, cache)
    train_chunks = report.split_sizes["train"] * config.chunks_per_clip
    probe = config.transfer == "linear-probe"
    # A resumed run has its own weights; a probe's frozen backbone embeds the clips first.
    if config.init_from and (resume_from is None or probe):
        source = init_from_run(module, config.init_from)
        folder.status(init_checkpoint=str(source))
        if probe:
            folder.status(phase="embedding the clips with the frozen network")
            datamodule = EmbeddingDataModule(datamodule, module.net, source, config.batch_size)
            train_chunks = len(datamodule.splits["train"])
    link = TrialLink.read(folder.run.trial)
    pruning = PruneTrial(run_dir, link) if link else None
    trainer, checkpoint = build_trainer(
        config, run_dir, train_chunks // config.batch_size, extra_callbacks=[pruning] if pruning else []
    )
    log.info("training %s on %s, %d tags", config.model, trainer.strategy.root_device, len(dataset.labels))
    folder.status(phase=RunStatus.TRAINING, skipped_clips=report.skipped)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        if resume_from:
            log.info("resuming from %s", resume_from.name)
        trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from, weights_only=True)
        best = absolute(checkpoint.best_model_path or checkpoint.last_model_path)
        if pruning and pruning.pruned_at:  # the sweep has what it needs; testing would only cost time
            folder.status(
                state=RunState.PRUNED,
                phase=f"pruned after epoch {pruning.pruned_at}",
                ended=time.time(),
                best_checkpoint=str(best.relative_to(run_dir)),
            )
            return {"pruned_after_epoch": pruning.pruned_at}
        ended_by = why_it_ended(trainer, config)
        log.info("training ended: %s; testing %s", ended_by, best.name)
        folder.status(phase="testing", best_checkpoint=str(best.relative_to(run_dir)), ended_by=ended_by)
        metrics = _evaluate(trainer, module, datamodule, best, report.split_sizes["test"], folder)
    best_score = checkpoint.best_model_score
    metrics.update(
        best_checkpoint=str(best.relative_to(run_dir)),
        best_val_loss=float(best_score) if best_score is not None else None,
        epochs=trainer.current_epoch,
        ended_by=ended_by,
        global_step=trainer.global_step,
        device=str(trainer.strategy.root_device),
        processes=trainer.world_size,
        torch=torch.__version__,
    )
    metrics = _plain(metrics)
    folder.json(folder.run.metrics, metrics)
    folder.status(state=RunState.COMPLETED, phase="done", ended=time.time(), test_roc_auc=metrics.get("roc_auc_macro"))
    log.info("test ROC-AUC %s, PR-AUC %s", _score(metrics.get("roc_auc_macro")), _score(metrics.get("pr_auc_macro")))
    return metrics


def _evaluate(
    trainer: Any, module: Any, datamodule: Any, best: Path, test_clips: int, folder: _RankFolder
) -> dict[str, Any]:
    """Test metrics of the best checkpoint, per-tag thresholds tuned on the validation split, and
    what those thresholds give on the test split, which had no say in them.

    Under DDP every rank runs this (test and predict are collective); rank 0 writes.
    """
    import torch

    from autotag.training.distributed import gather_eval_rows
    from autotag.training.metrics import clip_level
    from autotag.training.thresholds import precision_recall, tune_thresholds

    def clip_probs(loader: Any) -> tuple[Any, Any]:
        outputs = trainer.predict(module, dataloaders=loader, ckpt_path=best, weights_only=True)
        logits, targets, clip_idx = gather_eval_rows(outputs, len(module.labels))
        probs, targets = clip_level(torch.sigmoid(logits), targets, clip_idx)
        return probs.numpy(), targets.numpy()

    metrics: dict[str, Any] = {"test_clips": test_clips}
    if test_clips:
        trainer.test(module, datamodule=datamodule, ckpt_path=best, verbose=False, weights_only=True)
        metrics.update(module.test_result or {})
    else:
        metrics["note"] = "no test clips: test metrics not computed"
    folder.status(phase="tuning thresholds")
    tuned = tune_thresholds(*clip_probs(datamodule.val_dataloader()), module.labels)
    if test_clips:
        test_probs, test_targets = clip_probs(datamodule.test_dataloader())
        tuned["held_out"] = precision_recall(test_probs, test_targets, tuned["thresholds"], module.labels)
    folder.json(folder.run.thresholds, _plain(tuned))
    return metrics


def _score(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def fit_summary(metrics: dict[str, Any]) -> str:
    """One line for terminals; a score that could not be computed is "n/a", with the reason."""
    auc, pr = metrics.get("roc_auc_macro"), metrics.get("pr_auc_macro")
    why = f" ({metrics['note']})" if metrics.get("note") and None in (auc, pr) else ""
    return (
        f"epochs {metrics.get('epochs')} ({metrics.get('ended_by', 'ended')}), "
        f"best val_loss {_score(metrics.get('best_val_loss'))}, "
        f"test ROC-AUC {_score(auc)}, PR-AUC {_score(pr)}{why}"
    )
