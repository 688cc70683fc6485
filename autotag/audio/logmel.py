"""The log-mel front end, one module used both to fill the feature cache and at tagging time.

Keeping it an `nn.Module` inside the LightningModule means a checkpoint carries its own
preprocessing and runs it on the model's device (minzwon/sota-music-tagging-models).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from torch import nn
from torchaudio.transforms import AmplitudeToDB, MelSpectrogram

#: A chunk whose loudest mel bin lies this far below a full-scale tone's holds nothing to tag:
#: 16-bit audio's own noise floor lies about 100 dB down, a tone at -60 dBFS 60 dB down.
SILENCE_DB = 90.0


def silence_floor_db(n_fft: int) -> float:
    """The log-mel value (dB) under which a chunk's loudest bin means silence, for an STFT size.

    A full-scale sine puts (n_fft / 4)^2 of power into its bin through a Hann window: 42 dB
    at n_fft 512, 12 dB more at 2048, so the floor follows the STFT size.
    """
    return 20 * math.log10(n_fft / 4) - SILENCE_DB


def has_signal(mels: torch.Tensor, n_fft: int) -> torch.Tensor:
    """(chunks,) whether each chunk of (chunks, n_mels, frames) log-mels holds anything to tag.

    A silent chunk (a pause, a fade's end, digital silence) must not vote: its input is
    nothing any tag describes, and relative to its own level (`level` relative) its
    noise floor would look like loud noise.
    """
    return mels.amax(dim=(-2, -1)) >= silence_floor_db(n_fft)


class LogMel(nn.Module):
    """Waveform to log-mel spectrogram in dB (power, centred STFT, Hann window)."""

    def __init__(
        self,
        sample_rate: int,
        n_fft: int,
        hop_length: int,
        n_mels: int,
        f_min: float = 0.0,
        f_max: float | None = None,
    ) -> None:
        super().__init__()
        self.sample_rate = sample_rate
        self.hop_length = hop_length
        with warnings.catch_warnings():
            # 128 mels on a 512-point STFT (Won et al.'s setting) leaves the lowest filters
            # empty; torchaudio warns every time. Known and harmless: those bands stay at the floor.
            warnings.filterwarnings("ignore", message="At least one mel filterbank has all zero values")
            self.mel = MelSpectrogram(
                sample_rate=sample_rate,
                n_fft=n_fft,
                hop_length=hop_length,
                n_mels=n_mels,
                f_min=f_min,
                f_max=f_max,
            )
        self.to_db = AmplitudeToDB(stype="power")

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """Args: wave (batch, samples). Returns: (batch, n_mels, samples // hop + 1) in dB."""
        return self.to_db(self.mel(wave))


def file_logmel(source: object, settings: dict, max_seconds: float | None = 30.0) -> np.ndarray:
    """Log-mels of an audio file for display, with the same front end the model uses.

    Args:
        source: Anything `audio.load_audio` accepts.
        settings: LogMel keyword arguments (`TrainConfig.feature_settings()`).
        max_seconds: Keep only the first seconds (None: all).

    Returns:
        (n_mels, frames) float32 in dB.
    """
    from autotag.audio.decode import load_audio

    wave = load_audio(source, settings["sample_rate"])
    if max_seconds is not None:
        wave = wave[: int(max_seconds * settings["sample_rate"])]
    with torch.no_grad():
        return LogMel(**settings)(torch.from_numpy(wave)[None])[0].numpy()
