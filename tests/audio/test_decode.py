import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from autotag.audio.decode import AudioError, load_audio
from tests.conftest import tone


@pytest.mark.parametrize(
    ("ext", "fmt", "subtype"),
    [("wav", "WAV", "PCM_16"), ("flac", "FLAC", "PCM_16"), ("ogg", "OGG", "VORBIS"), ("mp3", "MP3", "MPEG_LAYER_III")],
)
def test_decodes_every_supported_format(tmp_path: Path, ext: str, fmt: str, subtype: str) -> None:
    path = tmp_path / f"clip.{ext}"
    sf.write(path, tone(1.0, 440, sr=44100, channels=2), 44100, format=fmt, subtype=subtype)
    wave = load_audio(path, 16000)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert abs(len(wave) - 16000) < 1200  # mp3/ogg add encoder padding
    # The tone survives decoding, down-mixing and resampling: its peak bin is at 440 Hz.
    spectrum = np.abs(np.fft.rfft(wave[:16000] if len(wave) >= 16000 else wave))
    assert np.argmax(spectrum) * 16000 / len(spectrum) / 2 == pytest.approx(440, abs=5)


def test_stereo_is_averaged_and_resampled(tmp_path: Path) -> None:
    left = tone(0.5, 300, sr=22050)[:, 0]
    stereo = np.stack([left, -left], axis=1)  # cancels out when averaged
    path = tmp_path / "s.wav"
    sf.write(path, stereo, 22050, subtype="FLOAT")
    wave = load_audio(path, 16000)
    assert len(wave) == 8000
    assert np.abs(wave).max() < 1e-6


def test_accepts_bytes_and_file_objects(tmp_path: Path) -> None:
    buf = io.BytesIO()
    sf.write(buf, tone(0.25), 16000, format="WAV")
    assert len(load_audio(buf.getvalue(), 16000)) == 4000
    buf.seek(0)
    assert len(load_audio(buf, 16000)) == 4000


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "not a readable audio file"), (b"RIFF\x00\x00garbage" * 10, "not a readable audio file")],
)
def test_bad_bytes_raise_audio_error(content: bytes, message: str) -> None:
    with pytest.raises(AudioError, match=message):
        load_audio(content, 16000)


def test_missing_and_non_finite_files(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="file not found"):
        load_audio(tmp_path / "nope.wav", 16000)
    bad = tone(0.1)
    bad[10] = np.nan
    sf.write(tmp_path / "nan.wav", bad, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN"):
        load_audio(tmp_path / "nan.wav", 16000)
    sf.write(tmp_path / "empty.wav", np.zeros((0, 1), np.float32), 16000)
    with pytest.raises(AudioError, match="no audio samples"):
        load_audio(tmp_path / "empty.wav", 16000)


@pytest.mark.parametrize(("rate", "target"), [(44100, 16000), (48000, 16000), (22050, 16000), (8000, 16000)])
def test_the_kept_resampler_gives_torchaudios_samples_exactly(rate: int, target: int) -> None:
    import torch
    import torchaudio.functional as AF

    from autotag.audio.decode import to_mono_resampled

    frames = np.random.default_rng(0).standard_normal((rate, 2)).astype(np.float32)
    expected = AF.resample(torch.from_numpy(frames).mean(dim=1), rate, target).numpy()
    for _ in range(2):  # built on the first call, reused on the second
        np.testing.assert_array_equal(to_mono_resampled(frames, rate, target), expected)


def test_large_resampling_kernels_are_not_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    from autotag.audio import decode as audio

    assert audio.resample_kernel_size(44100, 16000) == 160 * (441 + 2 * 17)  # torchaudio's kernel: (160, 1, 475)
    assert audio.resample_kernel_size(44101, 16000) > 500 * audio._CACHED_KERNEL_MAX  # gcd 1: 706 million floats
    monkeypatch.setattr(audio, "_CACHED_KERNEL_MAX", 1000)
    audio._resampler.cache_clear()
    frames = np.random.default_rng(0).standard_normal((4410, 1)).astype(np.float32)
    kept = audio.to_mono_resampled(frames, 48000, 16000)  # kernel of 41 floats: kept
    assert audio._resampler.cache_info().currsize == 1 and len(kept) == 1470
    assert len(audio.to_mono_resampled(frames, 44100, 16000)) == 1600  # 76,000 floats: built and dropped
    assert audio._resampler.cache_info().currsize == 1


def test_a_file_at_an_odd_rate_is_refused_not_resampled_at_gigabyte_cost(tmp_path: Path) -> None:
    """Training, tagging from the CLI and the Data page read files in this process too."""
    from autotag.audio.decode import iter_chunks

    path = tmp_path / "odd.wav"
    sf.write(path, tone(0.5, sr=44101), 44101)
    with pytest.raises(AudioError, match="odd.wav: sample rate 44101 Hz cannot be converted"):
        load_audio(path, 16000)
    with pytest.raises(AudioError, match="44101 Hz cannot be converted"):
        next(iter_chunks(path, 16000, 16000))


def test_the_limits_hold_at_their_edges() -> None:
    from autotag.audio.decode import LIMITS, UNKNOWN_FRAMES

    assert LIMITS.header_problem(8, 192000, 1200 * 192000) is None
    assert LIMITS.header_problem(1, 4000, UNKNOWN_FRAMES) is None  # no length stated: counted while decoding
    assert LIMITS.header_problem(9, 16000, 1) == "9 channels; at most 8 are accepted"
    assert LIMITS.header_problem(0, 16000, 1) == "0 channels; at most 8 are accepted"
    assert LIMITS.header_problem(1, 3999, 1) == "sample rate 3999 Hz is outside 4000..192000 Hz"
    assert LIMITS.header_problem(1, 192001, 1) == "sample rate 192001 Hz is outside 4000..192000 Hz"
    assert LIMITS.header_problem(1, 4000, 1200 * 4000 + 1) == "longer than the limit of 1200 s"


def test_a_length_the_header_leaves_open_is_counted_while_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from autotag.audio import decode

    path = tmp_path / "long.wav"
    sf.write(path, np.zeros(30 * 4000, np.float32), 4000)
    monkeypatch.setattr(decode, "LIMITS", decode.AudioLimits(max_seconds=20.0))
    monkeypatch.setattr(decode, "UNKNOWN_FRAMES", 30 * 4000)  # as if the header said nothing of its length
    with pytest.raises(AudioError, match="long.wav: longer than the limit of 20 s"):
        load_audio(path, 4000)
    # A streamed read holds one chunk at a time: it reads any length.
    assert len(list(decode.iter_chunks(path, 4000, 4000))) == 30
