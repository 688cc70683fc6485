"""Tag audio with a trained run: `Tagger.load(run_dir).predict(audio)`.

The checkpoint alone rebuilds the model and its log-mel front end; it is read with
`torch.load(weights_only=True)`, so a checkpoint file cannot run code when loaded.
Tagging builds only the front end and the network (`TaggingNet`), not the training
LightningModule, so it never imports Lightning (seconds at the first tag on a CPU).
"""

from __future__ import annotations

import copy
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from autotag.audio.decode import AudioSource, iter_chunks, load_audio
from autotag.audio.logmel import has_signal
from autotag.config import CHECKPOINT_FIELDS, checked_checkpoint_settings
from autotag.models.architectures import ConvBlock, ResBlock, TempoConv, TimbreConv, TimeConv, build_tagger
from autotag.store.checkpoints import checkpoint_candidates
from autotag.store.run_folder import RunError
from autotag.text import one_line

#: Constructor arguments of `autotag.training.module.TaggingModule` that tagging needs, each
#: checked against the config schema (`config.checked_checkpoint_settings`) before anything is built.
_HPARAMS = ("labels", *CHECKPOINT_FIELDS)
#: Hyper-parameters of training alone: tagging reads none of them.
_TRAINING_ONLY = {"lr", "weight_decay", "augment", "backbone_lr_factor"}


class TaggingNet(nn.Module):
    """The parts of a trained `TaggingModule` that tag: front end and network, same names.

    Built from a checkpoint's hyper-parameters exactly as `TaggingModule.__init__` builds
    them, and loaded from the same state_dict keys (`frontend.*`, `net.*`), without the
    Lightning import that `TaggingModule` costs.
    """

    def __init__(self, hparams: dict) -> None:
        """Raises: ConfigError: settings no config could hold (checked before anything is built)."""
        super().__init__()
        unknown = set(hparams) - set(_HPARAMS) - _TRAINING_ONLY
        if unknown:
            raise TypeError(f"unknown hyper-parameters {sorted(map(str, unknown))[:5]}")
        hp = checked_checkpoint_settings(hparams)
        self.hparams = SimpleNamespace(**hp)
        features = ("sample_rate", "n_fft", "hop_length", "n_mels", "f_min", "f_max")
        self.frontend, self.net = build_tagger(
            hp["model_name"], len(hp["labels"]), **{k: hp[k] for k in features}, level=hp["level"], tempo=hp["tempo"]
        )


def inference_net(net: nn.Module) -> nn.Module:
    """A copy of `net` (in eval mode) that computes the same function faster on a CPU.

    Each batch norm that directly follows a convolution is folded into that convolution's
    weights and bias (the usual inference rewrite, exact up to float rounding: ~1e-7 on the
    logits), and the copy runs in channels-last memory layout, where oneDNN's convolutions,
    max pooling and the element-wise ops are vectorised over channels. Together about twice
    as fast as `net` on a 2-core CPU. Blocks of other types are copied unchanged.
    """
    net = copy.deepcopy(net).eval()
    for block in net.modules():
        if isinstance(block, (ConvBlock, TimbreConv, TempoConv, TimeConv)):
            block.conv, block.bn = fuse_conv_bn_eval(block.conv, block.bn), nn.Identity()
        elif isinstance(block, ResBlock):
            block.conv1, block.bn1 = fuse_conv_bn_eval(block.conv1, block.bn1), nn.Identity()
            block.conv2, block.bn2 = fuse_conv_bn_eval(block.conv2, block.bn2), nn.Identity()
            if block.project:
                block.conv3, block.bn3 = fuse_conv_bn_eval(block.conv3, block.bn3), nn.Identity()
    for p in net.parameters():
        p.requires_grad_(False)
    return net.to(memory_format=torch.channels_last)


@dataclass
class Prediction:
    """Tag scores of one clip.

    Attributes:
        labels: Tag names, the column order of `taggram`.
        clip: Tag -> probability for the whole clip (mean over the chunks that hold a signal;
            all 0 for a clip that is silent throughout).
        taggram: (chunks, tags) probabilities of consecutive chunks; 0 for a silent chunk.
        chunk_starts: (chunks,) start time of each chunk in seconds.
        duration: Clip length in seconds.
        silent: No chunk holds a signal (`audio.logmel.has_signal`): nothing to tag.
        embedding: (width,) float32 input of the network's output layer (its penultimate
            layer), averaged over the chunks as `clip` is; None unless asked for, or silent.
    """

    labels: list[str]
    clip: dict[str, float]
    taggram: np.ndarray
    chunk_starts: np.ndarray
    duration: float
    silent: bool = False
    embedding: np.ndarray | None = None

    def top(self, k: int = 5) -> list[tuple[str, float]]:
        return sorted(self.clip.items(), key=lambda kv: -kv[1])[:k]


class Tagger:
    """A trained model ready to tag clips of any length on CPU or GPU."""

    def __init__(
        self,
        module: nn.Module,
        checkpoint: Path,
        device: str | torch.device = "cpu",
        note: str = "",
        checkpoint_mtime_ns: int | None = None,
    ) -> None:
        """Args: module: a `TaggingNet` (or anything with its `frontend`, `net` and `hparams`).
        checkpoint_mtime_ns: the checkpoint file's modification time as it was read (it may be gone since)."""
        self.module = module.eval().to(device)
        self.checkpoint = checkpoint
        self.checkpoint_mtime_ns = checkpoint_mtime_ns
        self.note = note  # says which checkpoints were unusable when a fallback was loaded
        self.device = torch.device(device)
        self._net = inference_net(self.module.net)  # what `predict` runs; `module` stays as trained
        # One forward pass at a time: each already uses every core (torch's threads), and five
        # dashboard uploads at once, each with its own threads, thrashed the CPU.
        self._forward_lock = threading.Lock()
        hp = module.hparams
        self.labels: list[str] = list(hp.labels)
        self.sample_rate: int = int(hp.sample_rate)
        self.chunk_samples: int = int(round(float(hp.chunk_seconds) * self.sample_rate))
        self.n_fft: int = int(hp.n_fft)

    @classmethod
    def load(cls, run_dir: str | Path, device: str | torch.device | None = None) -> Tagger:
        """Load the best checkpoint of `run_dir` that loads; a broken one falls back to the next.

        Raises:
            RunError: no run folder, no checkpoint, or no checkpoint that loads.
        """
        problems = []
        for path in checkpoint_candidates(run_dir):
            try:
                tagger = cls.from_checkpoint(path, device)
            except RunError as exc:
                problems.append(str(exc))
                continue
            if problems:
                tagger.note = f"using {path.name}; " + "; ".join(problems)
            return tagger
        raise RunError("; ".join(problems))

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device | None = None) -> Tagger:
        """Raises: RunError: the file is gone, broken, foreign, or holds settings no config could (one line)."""
        path = Path(path)
        try:
            with path.open("rb") as fh:
                mtime_ns = os.fstat(fh.fileno()).st_mtime_ns  # of the file read, even if it is replaced meanwhile
                ckpt = torch.load(fh, map_location="cpu", weights_only=True)
            module = TaggingNet(ckpt["hyper_parameters"])
            state = ckpt["state_dict"]
            # Strict for what tagging uses; whatever else training kept (none today) is not needed.
            module.load_state_dict({k: v for k, v in state.items() if k.startswith(("frontend.", "net."))})
        except Exception as exc:  # any failure here means: this file is not a usable checkpoint
            reason = one_line(f"{type(exc).__name__}: {exc}")  # torch's messages span lines
            raise RunError(f"checkpoint {path} cannot be loaded: {reason}") from None
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        return cls(module, path, device, checkpoint_mtime_ns=mtime_ns)

    def predict(
        self,
        audio: AudioSource | np.ndarray,
        batch_size: int | None = None,
        name: str | None = None,
        embed: bool = False,
    ) -> Prediction:
        """Score a clip chunk by chunk.

        Args:
            audio: A file path (streamed: memory stays that of one batch of chunks, whatever
                the file's length), file bytes, or samples (samples,) already at `sample_rate`.
            batch_size: Chunks per forward pass; default 16 on a GPU, 1 on a CPU. On a CPU a
                batch is no faster per chunk, and bigger activations cost time of their own:
                those of 16 `shortchunk_cnn` chunks (~240 MB) are fresh memory maps on every
                pass, and their page faults took as much CPU time as the convolutions (0.3 s
                of system time per 30 s clip); one chunk's (~15 MB) are reused from the heap.
            name: What to call the clip in error messages (e.g. an upload's file name).
            embed: Also give the clip's `embedding`.
        """
        n = self.chunk_samples
        if isinstance(audio, (str, Path)):
            chunks: Iterable[np.ndarray] = iter_chunks(audio, self.sample_rate, n)
        else:
            wave = audio if isinstance(audio, np.ndarray) else load_audio(audio, self.sample_rate, name)
            wave = np.asarray(wave, dtype=np.float32).reshape(-1)
            chunks = (wave[i : i + n] for i in range(0, max(len(wave), 1), n))
        return self.predict_chunks(chunks, batch_size, embed)

    def predict_chunks(
        self, chunks: Iterable[np.ndarray], batch_size: int | None = None, embed: bool = False
    ) -> Prediction:
        """Score a clip given as consecutive chunks of `chunk_samples` at `sample_rate` (the
        last may be shorter), as `iter_chunks` yields them: what `predict` does with them.

        An error the iterable raises (a decode failing part-way) comes out of this call.
        """
        if batch_size is None:
            batch_size = 1 if self.device.type == "cpu" else 16
        n = self.chunk_samples
        probs, weights, batch, voiced, embedded = [], [], [], [], []
        total = 0
        # Every network ends in an output layer; its input is the clip's embedding.
        output_layer = self._net.head[-1] if embed else nn.Identity()

        def flush() -> None:
            x = torch.from_numpy(np.stack(batch)).to(self.device)
            with self._forward_lock:
                mels = self.module.frontend(x)
                heard = has_signal(mels, self.n_fft)[:, None]  # a silent chunk tags nothing and does not vote
                hook = output_layer.register_forward_hook(lambda _m, i, _o: embedded.append(i[0].float().cpu()))
                try:
                    probs.append((torch.sigmoid(self._net(mels)) * heard).float().cpu())
                finally:
                    hook.remove()
                voiced.append(heard.float().cpu())
            batch.clear()

        with torch.inference_mode():
            for chunk in chunks:
                total += len(chunk)
                # A chunk shorter than the window (a clip shorter than it, or a clip's tail) is
                # looped to fill it, as in training (`data.cache.looped_chunk`): silence is an
                # input no training clip had. It still counts by its real audio in the clip score.
                weights.append(max(len(chunk), 1) / n)
                batch.append(chunk if len(chunk) == n else np.resize(chunk, n) if len(chunk) else np.zeros(n, "f4"))
                if len(batch) == batch_size:
                    flush()
            if batch:
                flush()
        taggram = torch.cat(probs)
        w = torch.tensor(weights)[:, None] * torch.cat(voiced)
        silent = not bool(w.sum() > 0)
        clip = torch.zeros(len(self.labels)) if silent else (taggram * w).sum(0) / w.sum()
        embedding = None if silent or not embed else ((torch.cat(embedded) * w).sum(0) / w.sum()).numpy()
        return Prediction(
            labels=self.labels,
            clip={t: float(p) for t, p in zip(self.labels, clip)},
            taggram=taggram.numpy(),
            chunk_starts=np.arange(len(taggram)) * n / self.sample_rate,
            duration=total / self.sample_rate,
            silent=silent,
            embedding=embedding,
        )
