"""A linear probe: a new output layer trained on the embeddings of a frozen network.

On a CPU the backbone's forward pass is nearly the whole cost of a step (a published FCN
takes ~0.2 s per 29 s chunk), and with the backbone frozen it gives the same embedding
every epoch. So each chunk is embedded once (the input of the network's output layer),
kept on disk beside the log-mels it came from, and the output layer trains on those
vectors in seconds; a second probe of the same source on the same clips starts at once.

The run is otherwise an ordinary one: the same Trainer, curves, early stopping, test and
thresholds, and its checkpoints hold the whole network (backbone unchanged, output layer
trained), so tagging, export and every page use it as any other run.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from autotag.data.datamodule import EvalChunks, TaggingDataModule
from autotag.digests import sha256
from autotag.training.module import TaggingModule

log = logging.getLogger("autotag.training.probe")

#: Changes when the embedding files' layout or meaning changes: older files are not read.
EMBEDDING_VERSION = 1


class ProbeModule(TaggingModule):
    """A TaggingModule fed embeddings: its forward pass is the output layer alone.

    The state dict is the whole module's, so its checkpoints load into `TaggingModule`.
    """

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.net.head[-1](embeddings)

    def heard(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Every one: its chunks are evaluation chunks, which hold a signal (`EvalChunks`)."""
        return torch.ones(len(embeddings), dtype=torch.bool, device=embeddings.device)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        params = self.net.head[-1].parameters()
        return torch.optim.Adam(params, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)


class EmbeddingDataModule(L.LightningDataModule):
    """The splits of `chunks` as embeddings of `net`: every chunk that validation scores, and
    for training the same evenly spaced chunks of each training clip (a frozen network gives
    a chunk one embedding, so random offsets would add nothing but cost)."""

    def __init__(self, chunks: TaggingDataModule, net: torch.nn.Module, source: Path, batch_size: int) -> None:
        super().__init__()
        self.batch_size = batch_size
        digest = sha256(source)
        self.splits = {s: _embedded(net, chunks.eval_dataset(s), digest) for s in ("train", "valid", "test")}

    def train_dataloader(self) -> DataLoader:
        emb, targets, _, _ = self.splits["train"].tensors
        ds = TensorDataset(emb, targets)
        return DataLoader(ds, batch_size=self.batch_size, shuffle=True, drop_last=len(ds) > self.batch_size)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.splits["valid"], batch_size=self.batch_size)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.splits["test"], batch_size=self.batch_size)


def _embedded(net: torch.nn.Module, chunks: EvalChunks, source_digest: str) -> TensorDataset:
    """(embedding, clip targets, clip number, chunk number) of every chunk, from disk when known."""
    n = len(chunks)
    clip_idx = torch.tensor([i for i, _, _ in chunks.items], dtype=torch.long)
    targets = chunks.clip_targets[clip_idx] if n else torch.zeros(0, chunks.clip_targets.shape[1])
    file = _embedding_file(chunks, source_digest)
    try:
        emb = torch.load(file, map_location="cpu", weights_only=True)
        if not isinstance(emb, torch.Tensor) or emb.ndim != 2 or len(emb) != n:
            raise ValueError(f"{file.name} does not hold {n} embeddings")
    except Exception as exc:  # none yet; or damaged: computed again, never trusted
        if not isinstance(exc, FileNotFoundError):
            log.warning("embeddings %s unreadable (%s): computing them again", file, exc)
        emb = _embed(net, chunks)
        try:
            _save_atomic(emb, file)
        except OSError as exc:  # a full or read-only cache costs the next probe time, not this one its run
            log.warning("embeddings not kept for the next probe (%s)", exc)
    return TensorDataset(emb.float(), targets.float(), clip_idx, torch.arange(n))


def _embed(net: torch.nn.Module, chunks: EvalChunks) -> torch.Tensor:
    """The input of `net`'s output layer for every chunk, in eval mode (no dropout, BatchNorm's running stats)."""
    captured: list[torch.Tensor] = []
    hook = net.head[-1].register_forward_hook(lambda _m, inputs, _out: captured.append(inputs[0].detach().cpu()))
    was_training = net.training
    net.eval()
    try:
        with torch.inference_mode():
            for batch in DataLoader(chunks, batch_size=16):
                net(batch[0])
    finally:
        hook.remove()
        net.train(was_training)
    if not captured:
        return torch.zeros(0, net.head[-1].in_features)
    log.info("embedded %d chunks", sum(len(c) for c in captured))
    return torch.cat(captured)


def _embedding_file(chunks: EvalChunks, source_digest: str) -> Path:
    """One file per source checkpoint, clips, chunk offsets and feature cache entry."""
    h = hashlib.sha256(f"{EMBEDDING_VERSION}\0{source_digest}\0{chunks.frames}\n".encode())
    for _, clip_id, start in chunks.items:
        h.update(f"{clip_id}\0{start}\n".encode())
    return chunks.cache.folder.parent / "embeddings" / f"{chunks.cache.folder.name}-{h.hexdigest()[:24]}.pt"


def _save_atomic(tensor: torch.Tensor, file: Path) -> None:
    """Written whole or not at all: a second process of the same probe may race for it."""
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_name(f".{file.name}.tmp-{os.getpid()}")
    try:
        torch.save(tensor.contiguous(), tmp)
        os.replace(tmp, file)
    finally:
        tmp.unlink(missing_ok=True)
