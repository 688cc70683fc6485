"""The LightningModule: log-mel front end + architecture, BCE with logits, Adam.

`save_hyperparameters()` stores only plain values (names, numbers, the label list), so a
checkpoint alone rebuilds the model and its preprocessing, and loads with
`torch.load(weights_only=True)`.
"""

from __future__ import annotations

import lightning as L
import torch
from torch import nn

from autotag.audio.logmel import has_signal
from autotag.models.architectures import build_tagger
from autotag.store.run_folder import PER_TAG_AUC
from autotag.training.augment import Augment, AugmentSettings
from autotag.training.distributed import EvalRows, gather_eval_rows
from autotag.training.finetune import fresh_layers
from autotag.training.metrics import clip_level, tag_scores, unscored_note


class TaggingModule(L.LightningModule):
    """Multi-label tagger on log-mel chunks.

    Args:
        model_name: Registry name of the architecture.
        labels: Tag names in output order.
        sample_rate, n_fft, hop_length, n_mels, f_min, f_max: Log-mel settings (Hz, samples).
        chunk_seconds: Input length the model was trained on, used again at tagging time.
        level: How the network hears loudness (`models.architectures.LEVELS`); a checkpoint
            from before this setting heard it as recorded ("absolute").
        tempo: Whether the network has a tempo branch (`models.architectures.TempoBranch`).
        lr, weight_decay: Adam settings.
        backbone_lr_factor: All but the output layer learn at `lr` times this: a network
            started from another keeps what it learned while its new output layer catches up.
        augment: `AugmentSettings` fields for training batches (None: none). Kept in the
            checkpoint's hyper-parameters, so a checkpoint says how it was trained.
    """

    def __init__(
        self,
        model_name: str,
        labels: list[str],
        sample_rate: int = 16000,
        n_fft: int = 512,
        hop_length: int = 256,
        n_mels: int = 128,
        f_min: float = 0.0,
        f_max: float | None = None,
        chunk_seconds: float = 3.69,
        level: str = "absolute",
        tempo: bool = False,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        augment: dict | None = None,
        backbone_lr_factor: float = 1.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.labels = list(labels)
        self.frontend, self.net = build_tagger(
            model_name, len(labels), sample_rate, n_fft, hop_length, n_mels, f_min, f_max, level, tempo
        )
        settings = AugmentSettings(**(augment or {}))
        self.augment = Augment(settings) if settings.active else None
        self.loss_fn = nn.BCEWithLogitsLoss()
        self._eval: list[EvalRows] = []
        self.test_result: dict | None = None
        self.val_note: str | None = None  # why the last validation's ROC-AUC and PR-AUC are n/a

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        """Args: mels (batch, n_mels, frames) in dB. Returns: logits (batch, tags)."""
        return self.net(mels)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        mels, targets = batch
        heard = self.heard(mels)
        if self.augment is not None:
            mels, targets = self.augment(mels, targets)
        logits = self(mels)
        # A silent chunk of a "piano" clip holds no piano: it would teach that silence is piano.
        loss = self.loss_fn(logits[heard], targets[heard]) if heard.any() else logits.sum() * 0.0
        self.log("train_loss", loss, on_step=True, on_epoch=False, prog_bar=True, batch_size=len(mels))
        return loss

    def heard(self, mels: torch.Tensor) -> torch.Tensor:
        """(batch,) which training chunks hold a signal (`audio.logmel.has_signal`)."""
        return has_signal(mels, self.hparams.n_fft)

    def on_train_epoch_start(self) -> None:
        self.log("lr", self.optimizers().param_groups[0]["lr"], on_step=False, on_epoch=True, sync_dist=True)

    def _eval_step(self, batch: tuple[torch.Tensor, ...]) -> EvalRows:
        mels, targets, clip_idx, chunk_idx = batch
        return self(mels).float().cpu(), targets.float().cpu(), clip_idx.cpu(), chunk_idx.cpu()

    def _epoch_scores(self, prefix: str) -> dict:
        """Logs `<prefix>_loss` over every chunk of the split and returns clip-level tag scores.

        The loss is computed here rather than per batch so that, under DDP, it is the mean
        over all chunks once each, exactly as in a single-process run.
        """
        logits, targets, clip_idx = gather_eval_rows(self._eval, len(self.labels))
        self._eval.clear()
        loss = self.loss_fn(logits, targets)
        self.log(f"{prefix}_loss", loss, prog_bar=prefix == "val", sync_dist=True)
        return tag_scores(*clip_level(torch.sigmoid(logits), targets, clip_idx), self.labels)

    def on_validation_epoch_start(self) -> None:
        self._eval.clear()

    def validation_step(self, batch: tuple, batch_idx: int) -> None:
        self._eval.append(self._eval_step(batch))

    def on_validation_epoch_end(self) -> None:
        scores = self._epoch_scores("val")
        self.val_note = unscored_note(scores, "valid")
        self.log("val_roc_auc", scores["roc_auc_macro"], prog_bar=True, sync_dist=True)
        self.log("val_pr_auc", scores["pr_auc_macro"], sync_dist=True)
        for tag, score in scores["per_tag"].items():  # a tag the split cannot score has no point
            if score["roc_auc"] is not None:
                self.log(f"{PER_TAG_AUC}{tag}", score["roc_auc"], sync_dist=True)

    def on_test_epoch_start(self) -> None:
        self._eval.clear()

    def test_step(self, batch: tuple, batch_idx: int) -> None:
        self._eval.append(self._eval_step(batch))

    def on_test_epoch_end(self) -> None:
        self.test_result = self._epoch_scores("test")
        note = unscored_note(self.test_result, "test")
        if note:
            self.test_result["note"] = note
        self.log("test_roc_auc", self.test_result["roc_auc_macro"], sync_dist=True)
        self.log("test_pr_auc", self.test_result["pr_auc_macro"], sync_dist=True)

    def predict_step(self, batch: tuple, batch_idx: int) -> EvalRows:
        """This rank's evaluation rows (logits, targets, clip and chunk numbers); nothing is logged."""
        return self._eval_step(batch)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        lr, factor = self.hparams.lr, self.hparams.get("backbone_lr_factor", 1.0)
        if factor == 1.0:  # one group, as runs saved before the factor existed resume with
            return torch.optim.Adam(self.parameters(), lr=lr, weight_decay=self.hparams.weight_decay)
        head = [p for name, p in self.named_parameters() if name.startswith(fresh_layers(self))]
        backbone = [p for p in self.parameters() if all(p is not h for h in head)]
        groups = [{"params": head}, {"params": backbone, "lr": lr * factor}]  # the first group's lr is logged
        return torch.optim.Adam(groups, lr=lr, weight_decay=self.hparams.weight_decay)
