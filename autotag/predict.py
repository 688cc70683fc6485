"""Tag audio with a trained run: `Tagger.load(run_dir).predict(audio)`.

The checkpoint alone rebuilds the model and its log-mel front end; it is read with
`torch.load(weights_only=True)`, so a checkpoint file cannot run code when loaded.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from autotag.audio import AudioSource, iter_chunks, load_audio
from autotag.module import TaggingModule
from autotag.runs import RunError, checkpoint_candidates


@dataclass
class Prediction:
    """Tag scores of one clip.

    Attributes:
        labels: Tag names, the column order of `taggram`.
        clip: Tag -> probability for the whole clip (mean over chunks).
        taggram: (chunks, tags) probabilities of consecutive chunks.
        chunk_starts: (chunks,) start time of each chunk in seconds.
        duration: Clip length in seconds.
    """

    labels: list[str]
    clip: dict[str, float]
    taggram: np.ndarray
    chunk_starts: np.ndarray
    duration: float

    def top(self, k: int = 5) -> list[tuple[str, float]]:
        return sorted(self.clip.items(), key=lambda kv: -kv[1])[:k]


class Tagger:
    """A trained model ready to tag clips of any length on CPU or GPU."""

    def __init__(
        self, module: TaggingModule, checkpoint: Path, device: str | torch.device = "cpu", note: str = ""
    ) -> None:
        self.module = module.eval().to(device)
        self.checkpoint = checkpoint
        self.note = note  # says which checkpoints were unusable when a fallback was loaded
        self.device = torch.device(device)
        hp = module.hparams
        self.labels: list[str] = list(hp.labels)
        self.sample_rate: int = int(hp.sample_rate)
        self.chunk_samples: int = int(round(float(hp.chunk_seconds) * self.sample_rate))

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
        path = Path(path)
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
            module = TaggingModule(**ckpt["hyper_parameters"])
            module.load_state_dict(ckpt["state_dict"])
        except Exception as exc:  # any failure here means: this file is not a usable checkpoint
            raise RunError(f"checkpoint {path} cannot be loaded: {type(exc).__name__}: {exc}") from None
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        return cls(module, path, device)

    def predict(self, audio: AudioSource | np.ndarray, batch_size: int = 16, name: str | None = None) -> Prediction:
        """Score a clip chunk by chunk.

        Args:
            audio: A file path (streamed: memory stays that of one batch of chunks, whatever
                the file's length), file bytes, or samples (samples,) already at `sample_rate`.
            batch_size: Chunks per forward pass.
            name: What to call the clip in error messages (e.g. an upload's file name).
        """
        n = self.chunk_samples
        if isinstance(audio, (str, Path)):
            chunks: Iterable[np.ndarray] = iter_chunks(audio, self.sample_rate, n)
        else:
            wave = audio if isinstance(audio, np.ndarray) else load_audio(audio, self.sample_rate, name)
            wave = np.asarray(wave, dtype=np.float32).reshape(-1)
            chunks = (wave[i : i + n] for i in range(0, max(len(wave), 1), n))
        return self._score(chunks, batch_size)

    def _score(self, chunks: Iterable[np.ndarray], batch_size: int) -> Prediction:
        n = self.chunk_samples
        probs, weights, batch = [], [], []
        total = 0

        def flush() -> None:
            x = torch.from_numpy(np.stack(batch)).to(self.device)
            probs.append(torch.sigmoid(self.module(self.module.frontend(x))).float().cpu())
            batch.clear()

        with torch.inference_mode():
            for chunk in chunks:
                total += len(chunk)
                # A short tail chunk is mostly padding: weight chunks by their real audio so
                # the silence added here does not dilute the clip score.
                weights.append(max(len(chunk), 1) / n)
                batch.append(np.pad(chunk, (0, n - len(chunk))) if len(chunk) < n else chunk)
                if len(batch) == batch_size:
                    flush()
            if batch:
                flush()
        taggram = torch.cat(probs)
        w = torch.tensor(weights)[:, None]
        clip = (taggram * w).sum(0) / w.sum()
        return Prediction(
            labels=self.labels,
            clip={t: float(p) for t, p in zip(self.labels, clip)},
            taggram=taggram.numpy(),
            chunk_starts=np.arange(len(taggram)) * n / self.sample_rate,
            duration=total / self.sample_rate,
        )
