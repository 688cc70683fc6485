"""Hostile and broken uploads: each gets a clear AudioError within seconds; the server process lives on."""

from __future__ import annotations

import io
import struct
import time

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autotag.audio.decode import AudioError, load_audio
from autotag.audio.sandbox import DecodeLimits, decode_untrusted
from tests.conftest import tone


def _encode(audio: np.ndarray, rate: int, fmt: str, subtype: str | None = None) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, audio, rate, format=fmt, subtype=subtype)
    return buf.getvalue()


def _wav_header(rate: int, channels: int, data_bytes: int, bits: int = 16) -> bytes:
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * block, block, bits)
    return (
        b"RIFF"
        + struct.pack("<I", min(36 + data_bytes, 0xFFFFFFFF))
        + b"WAVEfmt "
        + struct.pack("<I", 16)
        + fmt
        + b"data"
        + struct.pack("<I", data_bytes)
    )


def _flac_claiming(total_samples: int) -> bytes:
    """A one-second FLAC whose STREAMINFO says it holds `total_samples` samples."""
    data = bytearray(_encode(tone(1.0), 16000, "FLAC"))
    # STREAMINFO starts at byte 8 (after "fLaC" and the block header); samples: 36 bits at offset 13.5.
    at = 8 + 13
    data[at] = (data[at] & 0xF0) | ((total_samples >> 32) & 0x0F)
    data[at + 1 : at + 5] = struct.pack(">I", total_samples & 0xFFFFFFFF)
    return bytes(data)


def _timed(data: bytes, limits: DecodeLimits | None = None) -> tuple[np.ndarray | None, str, float]:
    start = time.monotonic()
    try:
        wave, message = decode_untrusted(data, 16000, "upload.wav", limits), ""
    except AudioError as exc:
        wave, message = None, str(exc)
    return wave, message, time.monotonic() - start


REFUSED = {
    "non-audio bytes named .wav": (lambda: b"<html>not audio</html>" * 50, "not a readable audio file"),
    "zero-length file": (lambda: b"", "the file is empty"),
    "1024 channels": (lambda: _wav_header(16000, 1024, 1024 * 2 * 100) + bytes(1024 * 2 * 100), "channels"),
    "sample rate 2^31-1": (lambda: _wav_header(2**31 - 1, 1, 3200) + bytes(3200), "sample rate"),
    "NaN samples": (lambda: _encode(np.full(1600, np.nan, np.float32), 16000, "WAV", "FLOAT"), "NaN"),
    "inf samples": (lambda: _encode(np.full(1600, np.inf, np.float32), 16000, "WAV", "FLOAT"), "NaN or infinite"),
    "one-hour WAV": (lambda: _wav_header(8000, 1, 8000 * 3600) + bytes(8000 * 3600), "longer than the limit"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_hostile_upload_is_refused_clearly_and_fast(case: str) -> None:
    make, expected = REFUSED[case]
    wave, message, seconds = _timed(make())
    assert wave is None and message.startswith("upload.wav: ") and expected in message, message
    assert seconds < 20


@pytest.mark.parametrize(
    ("case", "make", "seconds"),
    [
        (
            "WAV header claiming 4 GB",
            lambda: _wav_header(16000, 1, 0xFFFFFFF0) + tone(1.0).astype("<i2").tobytes(),
            1.0,
        ),
        ("8-bit PCM", lambda: _encode(tone(1.0), 16000, "WAV", "PCM_U8"), 1.0),
        ("24-bit PCM", lambda: _encode(tone(1.0), 16000, "WAV", "PCM_24"), 1.0),
        ("10 minutes of silence, compressed", lambda: _encode(np.zeros(600 * 8000, np.int16), 8000, "FLAC"), 600.0),
    ],
)
def test_odd_but_real_audio_decodes_to_its_true_length(case: str, make, seconds: float) -> None:  # noqa: ANN001
    data = make()
    wave, message, took = _timed(data)
    assert wave is not None, message
    assert len(wave) == pytest.approx(seconds * 16000, abs=400)
    assert took < 20
    if case.startswith("10 minutes"):
        assert len(data) < 200_000  # a small upload that decodes to a lot of samples


@pytest.mark.parametrize(
    ("case", "make", "at_most"),
    [
        ("truncated MP3", lambda: (lambda d: d[: len(d) // 2])(_encode(tone(3.0, sr=44100), 44100, "MP3")), 3.0),
        ("FLAC claiming billions of frames", lambda: _flac_claiming(2**35), 1.0),
    ],
)
def test_damaged_audio_gives_its_real_samples_or_a_clear_error(case: str, make, at_most: float) -> None:  # noqa: ANN001
    wave, message, took = _timed(make())
    if wave is None:
        assert message.startswith("upload.wav: ") and len(message) < 300, message
    else:
        assert 0 < len(wave) <= at_most * 16000 + 400  # never sized from the header's claim
    assert took < 20


def test_a_hang_or_memory_bomb_ends_the_worker_not_us() -> None:
    data = _encode(tone(5.0), 16000, "FLAC")
    _, message, took = _timed(data, DecodeLimits(timeout_s=0.01))
    assert "took longer than" in message and took < 5
    wave, message, _ = _timed(data, DecodeLimits(memory_mb=16))  # too little for the decoder
    assert wave is None and "memory" in message, message


VALID = _encode(tone(0.2), 16000, "WAV")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.binary(max_size=2048),
        st.builds(
            lambda i, b: VALID[:i] + bytes([b]) + VALID[i + 1 :], st.integers(0, len(VALID) - 1), st.integers(0, 255)
        ),
        st.builds(lambda n: VALID[:n], st.integers(0, len(VALID))),
    )
)
def test_fuzzed_bytes_only_ever_raise_audio_error_in_process(data: bytes) -> None:
    try:
        wave = load_audio(data, 16000)
    except AudioError:
        return
    assert wave.dtype == np.float32 and np.isfinite(wave).all()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.builds(lambda i, b: VALID[:i] + bytes([b]) + VALID[i + 1 :], st.integers(0, 60), st.integers(0, 255)))
def test_fuzzed_headers_only_ever_raise_audio_error_in_the_worker(data: bytes) -> None:
    try:
        wave = decode_untrusted(data, 16000, "fuzz.wav")
    except AudioError:
        return
    assert wave.dtype == np.float32 and np.isfinite(wave).all()


@pytest.mark.parametrize("rate", [44101, 191999])
def test_an_odd_sample_rate_is_refused_before_resampling_in_the_server(rate: int) -> None:
    """44,101 -> 16,000 Hz would need torchaudio to build a 2.8 GB kernel in this process."""
    wave, message, took = _timed(_wav_header(rate, 1, 2000) + bytes(2000))
    assert wave is None and f"sample rate {rate} Hz cannot be converted" in message, message
    assert took < 20
    for usual in (8000, 11025, 22050, 44100, 48000, 96000, 192000):
        assert decode_untrusted(_encode(tone(0.1, sr=usual), usual, "WAV"), 16000).dtype == np.float32
