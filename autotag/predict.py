"""Tag audio with a trained run: `Tagger.load(run_dir).predict(audio)`.

The checkpoint alone rebuilds the model and its log-mel front end; it is read with
`torch.load(weights_only=True)`, so a checkpoint file cannot run code when loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from autotag.audio import AudioSource, load_audio
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
            audio: A file path, file bytes, or samples (samples,) already at `sample_rate`.
            batch_size: Chunks per forward pass (bounds memory for long clips).
            name: What to call the clip in error messages (e.g. an upload's file name).
        """
        wave = audio if isinstance(audio, np.ndarray) else load_audio(audio, self.sample_rate, name)
        wave = np.asarray(wave, dtype=np.float32).reshape(-1)
        n = self.chunk_samples
        count = max(1, -(-len(wave) // n))
        padded = np.zeros(count * n, dtype=np.float32)
        padded[: len(wave)] = wave
        chunks = torch.from_numpy(padded).view(count, n)
        # The tail chunk is mostly padding when short; weight chunks by real audio so
        # silence added here does not dilute the clip score.
        weights = torch.full((count,), 1.0)
        weights[-1] = max(len(wave) - (count - 1) * n, 1) / n
        probs = []
        with torch.inference_mode():
            for batch in chunks.split(batch_size):
                mels = self.module.frontend(batch.to(self.device))
                probs.append(torch.sigmoid(self.module(mels)).float().cpu())
        taggram = torch.cat(probs)
        clip = (taggram * weights[:, None]).sum(0) / weights.sum()
        return Prediction(
            labels=self.labels,
            clip={t: float(p) for t, p in zip(self.labels, clip)},
            taggram=taggram.numpy(),
            chunk_starts=np.arange(count) * n / self.sample_rate,
            duration=len(wave) / self.sample_rate,
        )
