"""Workers started ahead of an upload (`prestart`) decode exactly like fresh ones, under the same limits."""

from __future__ import annotations

import io
import signal
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import soundfile as sf

from autotag.audio import sandbox
from autotag.audio.decode import AudioError
from autotag.audio.sandbox import DecodeLimits, decode_untrusted, prestart
from tests.conftest import tone


def _encode(audio: np.ndarray, rate: int, fmt: str = "WAV") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, audio, rate, format=fmt)
    return buf.getvalue()


CLIP = _encode(tone(2.0, sr=44100, channels=2), 44100)


def test_a_prestarted_worker_decodes_the_next_upload_like_a_fresh_one() -> None:
    fresh = decode_untrusted(CLIP, 16000)
    limits = DecodeLimits()
    prestart(limits)
    waiting = sandbox._spares[limits]
    prestart(limits)  # one is waiting already: no second one
    assert sandbox._spares[limits] is waiting and waiting.poll() is None
    np.testing.assert_array_equal(decode_untrusted(CLIP, 16000), fresh)
    assert limits not in sandbox._spares and waiting.returncode == 0  # used once, gone


def test_prestarted_workers_keep_their_limits() -> None:
    bomb = DecodeLimits(memory_mb=16)  # too little for the decoder
    prestart(bomb)
    with pytest.raises(AudioError, match="memory"):
        decode_untrusted(CLIP, 16000, "upload.wav", bomb)
    slow = DecodeLimits(timeout_s=0.005)
    prestart(slow)
    ten_minutes = _encode(np.zeros(600 * 8000, np.int16), 8000, "FLAC")
    with pytest.raises(AudioError, match="took longer than"):
        decode_untrusted(ten_minutes, 16000, "upload.flac", slow)


def test_a_dead_or_taken_worker_is_replaced() -> None:
    limits = DecodeLimits(timeout_s=29.0)  # limits of their own: a waiting decoder of its own
    prestart(limits)
    sandbox._spares[limits].send_signal(signal.SIGKILL)
    sandbox._spares[limits].wait()
    assert len(decode_untrusted(CLIP, 16000, limits=limits)) == 32000  # a fresh decoder instead
    prestart(limits)
    with ThreadPoolExecutor(3) as pool:  # one takes the waiting decoder, the others start their own
        waves = list(pool.map(lambda _: decode_untrusted(CLIP, 16000, limits=limits), range(3)))
    assert [len(w) for w in waves] == [32000] * 3


def test_a_waiting_worker_ends_when_its_parent_does() -> None:
    limits = DecodeLimits(timeout_s=28.0)
    prestart(limits)
    decoder = sandbox._spares.pop(limits)
    decoder.stdin.close()  # what the parent's exit does to the pipe
    assert decoder.wait(timeout=10) == 2 and b"the file is empty" in decoder.stderr.read()
    decoder.stdout.close()
    decoder.stderr.close()
