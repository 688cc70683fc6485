"""Perturbations do what their names say, at the strength asked, and nothing at a neutral one."""

from __future__ import annotations

import numpy as np
import pytest

from autotag.audio.perturb import PERTURBATIONS, PerturbationError, get, perturb

SR = 16000


def _music(seconds: float = 3.0) -> np.ndarray:
    """A chord with a decaying envelope and a little noise: not a pure tone, not silence."""
    t = np.arange(int(seconds * SR)) / SR
    chord = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6, 1760.0))
    wave = 0.2 * chord * np.exp(-((t % 0.5) * 3)) + 0.002 * np.random.default_rng(0).standard_normal(len(t))
    return wave.astype(np.float32)


def _power(x: np.ndarray) -> float:
    return float(np.mean(np.square(x.astype(np.float64))))


def _aligned_correlation(decoded: np.ndarray, wave: np.ndarray, most: int = SR // 10) -> float:
    """Correlation after the decoder's delay (LAME's below 64 kbit/s: about 70 ms) is taken out."""
    n = min(len(decoded), len(wave)) - most
    lag = max(range(most), key=lambda k: float(np.dot(decoded[k : k + n], wave[:n])))
    return float(np.corrcoef(decoded[lag : lag + n], wave[:n])[0, 1])


def _peak_hz(x: np.ndarray, lo: float, hi: float) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    freqs = np.fft.rfftfreq(len(x), 1 / SR)
    band = (freqs >= lo) & (freqs <= hi)
    return float(freqs[band][np.argmax(spectrum[band])])


@pytest.mark.parametrize("name", [n for n, p in PERTURBATIONS.items() if p.neutral is not None])
def test_the_neutral_strength_is_the_identity(name: str) -> None:
    wave = _music()
    out = perturb(wave, SR, name, PERTURBATIONS[name].neutral, np.random.default_rng(0))
    np.testing.assert_array_equal(out, wave)


@pytest.mark.parametrize("name", ["white_noise", "pink_noise"])
@pytest.mark.parametrize("snr", [30.0, 10.0, 0.0])
def test_noise_is_added_at_the_asked_snr(name: str, snr: float) -> None:
    wave = _music()
    noise = perturb(wave, SR, name, snr, np.random.default_rng(1)) - wave
    assert 10 * np.log10(_power(wave) / _power(noise)) == pytest.approx(snr, abs=0.01)


def test_pink_noise_has_more_power_low_than_high() -> None:
    silence_ish = np.full(SR * 4, 1e-3, dtype=np.float32)
    noise = perturb(silence_ish, SR, "pink_noise", 0.0, np.random.default_rng(2)) - silence_ish
    spectrum = np.abs(np.fft.rfft(noise)) ** 2
    freqs = np.fft.rfftfreq(len(noise), 1 / SR)
    low, high = spectrum[(freqs > 100) & (freqs < 200)].mean(), spectrum[(freqs > 3200) & (freqs < 6400)].mean()
    # 1/f power: the mean over an octave falls 3 dB per octave, and 3200 Hz is 5 octaves above 100 Hz
    assert 10 * np.log10(low / high) == pytest.approx(10 * np.log10(32), abs=2)


def test_the_same_seed_gives_the_same_noise_and_another_seed_other_noise() -> None:
    wave = _music()
    a = perturb(wave, SR, "white_noise", 10, np.random.default_rng(7))
    np.testing.assert_array_equal(a, perturb(wave, SR, "white_noise", 10, np.random.default_rng(7)))
    assert not np.array_equal(a, perturb(wave, SR, "white_noise", 10, np.random.default_rng(8)))


@pytest.mark.parametrize("semitones", [-2, -1, 1, 2])
def test_pitch_shift_moves_the_pitch_and_keeps_the_length(semitones: int) -> None:
    t = np.arange(SR * 2) / SR
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    out = perturb(tone, SR, "pitch_shift", semitones, np.random.default_rng(0))
    assert len(out) == len(tone)
    expected = 440 * 2 ** (semitones / 12)
    assert _peak_hz(out[SR // 2 : -SR // 4], 300, 700) == pytest.approx(expected, rel=0.01)


@pytest.mark.parametrize("rate", [0.8, 0.9, 1.1, 1.25])
def test_time_stretch_changes_the_length_not_the_pitch(rate: float) -> None:
    t = np.arange(SR * 2) / SR
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    out = perturb(tone, SR, "time_stretch", rate, np.random.default_rng(0))
    assert len(out) == pytest.approx(len(tone) / rate, abs=2)
    assert _peak_hz(out[SR // 4 : -SR // 4], 300, 700) == pytest.approx(440, rel=0.01)


def test_low_pass_removes_what_is_above_the_cut_off() -> None:
    wave = _music()
    out = perturb(wave, SR, "low_pass", 1, np.random.default_rng(0))  # 1 kHz: the 1760 Hz partial goes
    spectrum_in, spectrum_out = np.abs(np.fft.rfft(wave)), np.abs(np.fft.rfft(out))
    freqs = np.fft.rfftfreq(len(wave), 1 / SR)
    at = lambda f: int(np.argmin(np.abs(freqs - f)))  # noqa: E731
    assert spectrum_out[at(1760)] < spectrum_in[at(1760)] * 0.02  # 8th order: -36 dB at 1.76x the cut-off
    assert spectrum_out[at(220)] == pytest.approx(spectrum_in[at(220)], rel=1e-3)


@pytest.mark.parametrize("kbps", [64, 32, 16])
def test_mp3_reencoding_keeps_the_music_at_the_asked_bit_rate(kbps: int) -> None:
    import io

    import soundfile as sf

    from autotag.audio.perturb import _MP3_RANGE

    wave = _music()
    low, high = _MP3_RANGE[False]
    buffer = io.BytesIO()  # what `mp3` asks libsndfile for, to see the size it writes
    sf.write(
        buffer,
        wave,
        SR,
        format="MP3",
        subtype="MPEG_LAYER_III",
        compression_level=(high - kbps) / (high - low),
        bitrate_mode="CONSTANT",
    )
    assert buffer.tell() * 8 / 3 / 1000 == pytest.approx(kbps, rel=0.1)
    out = perturb(wave, SR, "mp3", kbps, np.random.default_rng(0))
    assert abs(len(out) - len(wave)) < 0.1 * SR
    assert _aligned_correlation(out, wave) > 0.98  # the same music, coarser (and a little later)


def test_ogg_reencoding_keeps_the_music() -> None:
    wave = _music()
    for level in PERTURBATIONS["ogg"].strengths:
        assert _aligned_correlation(perturb(wave, SR, "ogg", level, np.random.default_rng(0)), wave) > 0.98


def test_gain_and_clipping() -> None:
    wave = _music()
    quieter = perturb(wave, SR, "gain", -20, np.random.default_rng(0))
    assert 10 * np.log10(_power(quieter) / _power(wave)) == pytest.approx(-20, abs=0.01)
    clipped = perturb(wave, SR, "clipping", 10, np.random.default_rng(0))
    share = np.mean(np.abs(clipped) >= np.abs(clipped).max() - 1e-7)
    assert share == pytest.approx(0.10, abs=0.01)


def test_labels_and_an_unknown_name() -> None:
    assert [get("white_noise").label(s) for s in (30, 0)] == ["30 dB SNR", "0 dB SNR"]
    assert get("pitch_shift").label(-1) == "-1 st" and get("time_stretch").label(1.25) == "1.25x"
    with pytest.raises(PerturbationError, match="known: white_noise, pink_noise"):
        get("reverb")
