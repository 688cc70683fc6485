"""What a user's audio goes through before the model hears it: noise, other keys and tempi,
filtering, lossy re-encoding, level and clipping, each at a few strengths.

Every perturbation works on a mono float32 wave at the model's sample rate (what the model
hears, so the clean wave gives exactly the features training saw) and returns one, possibly
of another length (time stretch). Randomness comes only from the `rng` it is given, so a
report is reproducible from its seed. The strengths follow Won et al. 2020's robustness
script where it has them (noise SNRs, pitch shift, time stretch, gain) and common
real-world cases otherwise (a phone's low-pass, voice-message bit rates).

Pitch shift and time stretch use Signalsmith Stretch (`python-stretch`: 20-25 ms for 10 s
of audio here, where torchaudio's PitchShift took 0.5-1.8 s); MP3 and Ogg Vorbis are
encoded and decoded by libsndfile through soundfile; the rest is numpy.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from autotag.errors import AutotagError

Apply = Callable[[np.ndarray, int, float, np.random.Generator], np.ndarray]


class PerturbationError(AutotagError):
    """An unknown perturbation or strength; the message names the known ones."""


@dataclass(frozen=True)
class Perturbation:
    """One kind of degradation and the strengths a report tries.

    Attributes:
        strengths: In the report's order, mildest first.
        neutral: The strength that leaves a wave unchanged, where one exists.
        unit: How a strength is shown (`label`).
    """

    name: str
    about: str
    strengths: tuple[float, ...]
    unit: str
    apply: Apply
    neutral: float | None = None

    def label(self, strength: float) -> str:
        """The strength as the report's key and the charts' axis show it, e.g. "10 dB SNR"."""
        if self.unit == "semitones":
            return f"{strength:+g} st"
        if self.unit == "x":
            return f"{strength:g}x"
        return f"{strength:g} {self.unit}"


def _power(wave: np.ndarray) -> float:
    return float(np.mean(np.square(wave, dtype=np.float64))) if len(wave) else 0.0


def _at_snr(wave: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """`wave` plus `noise` scaled to `snr_db` below the wave's power (digital silence gets none)."""
    signal, power = _power(wave), _power(noise)
    if signal == 0.0 or power == 0.0 or np.isinf(snr_db):
        return wave
    scale = np.sqrt(signal / (power * 10 ** (snr_db / 10)))
    return (wave + scale * noise).astype(np.float32)


def white_noise(wave: np.ndarray, sample_rate: int, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    return _at_snr(wave, rng.standard_normal(len(wave)), snr_db)


def pink_noise(wave: np.ndarray, sample_rate: int, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """1/f noise: white noise shaped in the frequency domain (power falls 3 dB per octave)."""
    if len(wave) < 2:
        return wave
    spectrum = np.fft.rfft(rng.standard_normal(len(wave)))
    freqs = np.fft.rfftfreq(len(wave))
    spectrum[1:] /= np.sqrt(freqs[1:])
    spectrum[0] = 0.0  # no DC offset
    return _at_snr(wave, np.fft.irfft(spectrum, n=len(wave)), snr_db)


def _stretch(wave: np.ndarray, sample_rate: int, semitones: float = 0.0, rate: float = 1.0) -> np.ndarray:
    import python_stretch

    if semitones == 0.0 and rate == 1.0:
        return wave
    stretch = python_stretch.Signalsmith.Stretch()
    stretch.preset(1, sample_rate)
    stretch.setTransposeSemitones(semitones)
    stretch.setTimeFactor(rate)
    return stretch.process(np.ascontiguousarray(wave, dtype=np.float32)[None])[0]


def pitch_shift(wave: np.ndarray, sample_rate: int, semitones: float, rng: np.random.Generator) -> np.ndarray:
    return _stretch(wave, sample_rate, semitones=semitones)


def time_stretch(wave: np.ndarray, sample_rate: int, rate: float, rng: np.random.Generator) -> np.ndarray:
    """`rate` > 1 plays faster (a shorter wave), as librosa's `time_stretch` counts it."""
    return _stretch(wave, sample_rate, rate=rate)


#: Order of the low-pass filter: 48 dB per octave past the cut-off, like a steep phone filter.
LOWPASS_ORDER = 8


def low_pass(wave: np.ndarray, sample_rate: int, cutoff_khz: float, rng: np.random.Generator) -> np.ndarray:
    """A zero-phase Butterworth magnitude response applied in the frequency domain.

    A cut-off at or above the Nyquist frequency leaves the wave as it is: the model hears
    nothing above it anyway (8 kHz at the default 16 kHz).
    """
    cutoff = cutoff_khz * 1000
    if cutoff >= sample_rate / 2 or len(wave) < 2:
        return wave
    spectrum = np.fft.rfft(wave.astype(np.float64))
    freqs = np.fft.rfftfreq(len(wave), 1 / sample_rate)
    spectrum /= np.sqrt(1 + (freqs / cutoff) ** (2 * LOWPASS_ORDER))
    return np.fft.irfft(spectrum, n=len(wave)).astype(np.float32)


def _reencode(wave: np.ndarray, sample_rate: int, fmt: str, subtype: str, **options: object) -> np.ndarray:
    import soundfile as sf

    buffer = io.BytesIO()
    peak = float(np.max(np.abs(wave))) if len(wave) else 0.0
    scale = 1.0 / peak if peak > 1.0 else 1.0  # encoders clip at full scale; keep the level
    sf.write(buffer, wave * scale, sample_rate, format=fmt, subtype=subtype, **options)
    buffer.seek(0)
    decoded, _ = sf.read(buffer, dtype="float32", always_2d=True)
    return decoded.mean(axis=1) / scale


#: libsndfile's MP3 bit-rate range (kbit/s) by MPEG version: MPEG-1 from 32 kHz, MPEG-2 below.
_MP3_RANGE = {True: (32, 320), False: (8, 160)}


def mp3(wave: np.ndarray, sample_rate: int, kbps: float, rng: np.random.Generator) -> np.ndarray:
    """Constant bit rate MP3 (LAME): libsndfile sets the bit rate from a compression level
    that spans its version's range (MPEG-2 at 16 kHz: 160 down to 8 kbit/s; MPEG-1 from 32 kHz
    goes no lower than 32 kbit/s, so a lower rate asked there is 32). Decoded as a player
    without gapless data would: below 64 kbit/s the music starts about 70 ms late."""
    low, high = _MP3_RANGE[sample_rate >= 32000]
    level = min(1.0, max(0.0, (high - kbps) / (high - low)))
    return _reencode(wave, sample_rate, "MP3", "MPEG_LAYER_III", compression_level=level, bitrate_mode="CONSTANT")


def mp3_available() -> bool:
    """Whether this libsndfile writes MP3 (1.1 and later, built with LAME)."""
    import soundfile as sf

    return "MP3" in sf.available_formats()


def ogg_vorbis(wave: np.ndarray, sample_rate: int, level: float, rng: np.random.Generator) -> np.ndarray:
    """Ogg Vorbis at libsndfile's compression `level` (0 best, 1 smallest: about 40 and 29 kbit/s
    for music at 16 kHz; Vorbis goes no lower there)."""
    return _reencode(wave, sample_rate, "OGG", "VORBIS", compression_level=level)


def gain(wave: np.ndarray, sample_rate: int, db: float, rng: np.random.Generator) -> np.ndarray:
    return wave if db == 0 else (wave * 10 ** (db / 20)).astype(np.float32)


def clipping(wave: np.ndarray, sample_rate: int, percent: float, rng: np.random.Generator) -> np.ndarray:
    """Hard clipping of the loudest `percent` % of samples, as an overdriven input would
    (audiomentations' ClippingDistortion: the threshold is a percentile of |wave|)."""
    if percent <= 0 or not len(wave):
        return wave
    threshold = float(np.percentile(np.abs(wave), 100 - percent))
    return np.clip(wave, -threshold, threshold).astype(np.float32)


PERTURBATIONS: dict[str, Perturbation] = {
    p.name: p
    for p in (
        Perturbation("white_noise", "additive white noise", (30, 20, 10, 0), "dB SNR", white_noise, np.inf),
        Perturbation("pink_noise", "additive pink (1/f) noise", (30, 20, 10, 0), "dB SNR", pink_noise, np.inf),
        Perturbation("pitch_shift", "pitch shift, same tempo", (-1, 1, -2, 2), "semitones", pitch_shift, 0.0),
        Perturbation("time_stretch", "tempo change, same pitch", (0.9, 1.1, 0.8, 1.25), "x", time_stretch, 1.0),
        Perturbation("low_pass", "low-pass filter (8th order)", (8, 4, 2), "kHz", low_pass, np.inf),
        Perturbation("mp3", "re-encoded as constant bit rate MP3", (64, 32, 16), "kbps", mp3),
        Perturbation("ogg", "re-encoded as Ogg Vorbis", (0.5, 1.0), "level", ogg_vorbis),
        Perturbation("gain", "quieter by a gain", (-20, -40), "dB", gain, 0.0),
        Perturbation("clipping", "hard clipping", (1, 10, 25), "% clipped", clipping, 0.0),
    )
}


def get(name: str) -> Perturbation:
    """Raises: PerturbationError: not a known perturbation (the message lists them)."""
    try:
        return PERTURBATIONS[name]
    except KeyError:
        raise PerturbationError(f"no perturbation {name!r}; known: {', '.join(PERTURBATIONS)}") from None


def perturb(wave: np.ndarray, sample_rate: int, name: str, strength: float, rng: np.random.Generator) -> np.ndarray:
    """`wave` as perturbation `name` at `strength` leaves it (float32, mono)."""
    out = get(name).apply(np.asarray(wave, dtype=np.float32), sample_rate, strength, rng)
    return np.asarray(out, dtype=np.float32)
