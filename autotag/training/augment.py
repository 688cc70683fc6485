"""Augmentation of training batches, on the model's device, in the log-mel domain.

Training reads log-mel chunks from the feature cache (`autotag.data.cache`), never
waveforms, so every augmentation here works on (batch, n_mels, frames) dB features:
- SpecAugment masks (Park et al. 2019) with torchaudio's `FrequencyMasking`/`TimeMasking`;
  a masked region takes the example's mean level instead of 0 dB, which in these
  features (floor -100 dB) would be a loud plateau rather than an absence;
- random gain: a constant added in dB;
- noise at a random SNR: noise power added in the mel power domain, which is what adding
  independent noise to the waveform does to the expected power spectrum;
- mixup (Zhang et al. 2018): two examples mixed in the power domain, their 0/1 targets
  mixed with the same weight, so a tag half-present has target 0.5.
The random position of each chunk in its clip (`autotag.data.datamodule`) is the time
shift. Pitch and tempo changes would need waveforms and cost 0.5-1.8 s per clip
(torchaudio's PitchShift on a CPU): not offered.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torchaudio.transforms import FrequencyMasking, TimeMasking

#: Noise is drawn at an SNR between `noise_snr_db` and this much above it.
SNR_SPAN_DB = 20.0


@dataclass(frozen=True)
class AugmentSettings:
    """What to apply; a zero switches one augmentation off (the config's fields of the same names)."""

    freq_mask: int = 0  # widest band of mel bins masked
    time_mask: int = 0  # widest run of frames masked
    gain_db: float = 0.0  # gain drawn from [-gain_db, +gain_db]
    noise_snr_db: float = 0.0  # lowest SNR of the added noise
    mixup: float = 0.0  # Beta(alpha, alpha) of the mixing weight

    @property
    def active(self) -> bool:
        return bool(self.freq_mask or self.time_mask or self.gain_db or self.noise_snr_db or self.mixup)


class Augment(nn.Module):
    """Applies `AugmentSettings` to a training batch; holds no weights (nothing in checkpoints)."""

    def __init__(self, settings: AugmentSettings) -> None:
        super().__init__()
        self.settings = settings
        self.freq = FrequencyMasking(settings.freq_mask, iid_masks=True) if settings.freq_mask else None
        self.time = TimeMasking(settings.time_mask, iid_masks=True) if settings.time_mask else None

    def forward(self, mels: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Args: mels (batch, n_mels, frames) in dB, targets (batch, tags) in [0, 1]."""
        s = self.settings
        if s.gain_db:
            mels = mels + (torch.rand(len(mels), 1, 1, device=mels.device) * 2 - 1) * s.gain_db
        mix = bool(s.mixup) and len(mels) > 1
        if s.noise_snr_db or mix:  # both work on power: one conversion there and back
            power = _to_power(mels)
            if s.noise_snr_db:
                power = _add_noise(power, s.noise_snr_db)
            if mix:
                power, targets = _mixup(power, targets, s.mixup)
            mels = _to_db(power)
        if self.freq is not None or self.time is not None:
            mean = mels.mean(dim=(1, 2), keepdim=True)
            centred = (mels - mean)[:, None]  # (batch, 1, mels, frames): iid masks need a channel axis
            if self.freq is not None:
                centred = self.freq(centred)
            if self.time is not None:
                centred = self.time(centred)
            mels = centred[:, 0] + mean
        return mels, targets


_DB = 10.0 / math.log(10.0)  # dB per neper of power: 10 log10(p) = _DB * ln(p)


def _to_power(db: torch.Tensor) -> torch.Tensor:
    return torch.exp(db / _DB)


def _to_db(power: torch.Tensor) -> torch.Tensor:
    return _DB * torch.log(power.clamp_min(1e-10))  # AmplitudeToDB's floor: -100 dB


def _add_noise(power: torch.Tensor, min_snr_db: float) -> torch.Tensor:
    """White-ish noise of random colour at an SNR in [min_snr_db, min_snr_db + SNR_SPAN_DB].

    The noise's spectrum is a random tilt over the mel bands (white to pink-like), with
    exponentially distributed power per bin, as a periodogram of Gaussian noise has.
    """
    n, bands = power.shape[:2]
    snr_db = min_snr_db + torch.rand(n, 1, 1, device=power.device) * SNR_SPAN_DB
    tilt = torch.linspace(0.0, 1.0, bands, device=power.device)[None, :, None]
    shape = torch.exp(-tilt * torch.rand(n, 1, 1, device=power.device) * math.log(10.0))  # top band up to 10 dB down
    shape = shape / shape.mean(dim=1, keepdim=True)
    # Per band and example: the level of the noise (small tensors; one full-size multiply below).
    level = shape * power.mean(dim=(1, 2), keepdim=True) * torch.exp(-snr_db / _DB)
    # Exponential(1) by inversion: one uniform draw per bin, half the cost of two Gaussians.
    grain = torch.log1p(-torch.rand_like(power)).neg_()
    return torch.addcmul(power, grain, level)


def _mixup(power: torch.Tensor, targets: torch.Tensor, alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Each example mixed with another of the batch, weight from Beta(alpha, alpha) (>= 0.5 for its own)."""
    weight = torch.distributions.Beta(alpha, alpha).sample((len(power),)).to(power.device, power.dtype)
    weight = torch.maximum(weight, 1 - weight)  # the example stays the louder part of its mix
    other = torch.randperm(len(power), device=power.device)
    w = weight[:, None, None]
    mixed = w * power + (1 - w) * power[other]
    return mixed, weight[:, None] * targets + (1 - weight[:, None]) * targets[other]
