"""The decoder pool: chunks exactly as `iter_chunks` reads the files, in order, whatever a decoder does."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from autotag.audio.decode import AudioError, iter_chunks
from autotag.audio.sandbox import DecodeLimits
from autotag.library.decoders import QUEUE_CHUNKS, DecoderPool
from tests.conftest import tone

RATE, CHUNK = 16000, 24000  # 1.5 s chunks at the model's rate


@pytest.fixture
def clips(tmp_path: Path) -> list[Path]:
    """Mono and stereo files at four rates in four formats, one shorter than a chunk."""
    made = []
    for name, seconds, rate, channels in (
        ("a.wav", 4.0, 16000, 1),
        ("b.flac", 3.1, 44100, 2),
        ("c.ogg", 2.0, 48000, 2),
        ("d.mp3", 3.3, 22050, 1),
        ("e.wav", 0.4, 44100, 2),
    ):
        wave = tone(seconds, 300 + 50 * len(made), rate, channels)
        if channels == 2:
            wave[:, 1] *= 0.3  # the channels differ: the down-mix counts
        sf.write(tmp_path / name, wave, rate)
        made.append(tmp_path / name)
    return made


def _same(got: list[np.ndarray], path: Path) -> bool:
    want = list(iter_chunks(path, RATE, CHUNK))
    return len(got) == len(want) and all(np.array_equal(g, w) for g, w in zip(got, want))


def test_chunks_are_iter_chunks_bit_for_bit_in_submission_order(clips: list[Path]) -> None:
    with DecoderPool(2, RATE, CHUNK) as pool:
        tickets = [pool.submit(str(p)) for p in clips + clips]  # all ahead: both decoders busy
        assert [t.slot for t in tickets[:4]] == [0, 1, 0, 1]
        for ticket in tickets:
            assert _same(list(pool.chunks(ticket)), Path(ticket.path)), ticket


def test_a_refused_file_says_why_and_the_others_decode(clips: list[Path], tmp_path: Path) -> None:
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF" + os.urandom(500))
    with DecoderPool(1, RATE, CHUNK) as pool:
        tickets = [pool.submit(str(p)) for p in (clips[0], junk, clips[1])]
        assert _same(list(pool.chunks(tickets[0])), clips[0])
        with pytest.raises(AudioError, match="^not a readable audio file"):
            list(pool.chunks(tickets[1]))
        assert _same(list(pool.chunks(tickets[2])), clips[1])


def test_a_crashed_decoder_fails_its_file_and_a_new_one_decodes_the_rest(clips: list[Path], tmp_path: Path) -> None:
    # Longer than the queue and a pipe hold (40 chunks against 16 + 1), so that the decoder is
    # still at work on it when it is killed: a short file was decoded to its end before the kill
    # on an idle machine, and read back whole.
    long = tmp_path / "long.wav"
    sf.write(long, tone(60.0, 440, RATE, 1), RATE)
    assert 60.0 * RATE / CHUNK > QUEUE_CHUNKS + 2
    with DecoderPool(1, RATE, CHUNK) as pool:
        tickets = [pool.submit(str(p)) for p in [long, *clips]]
        first = pool.chunks(tickets[0])
        next(first)
        os.kill(pool.slots[0].proc.pid, signal.SIGKILL)
        with pytest.raises(AudioError, match=r"crashed \(SIGKILL\)"):
            list(first)
        for ticket in tickets[1:]:
            assert _same(list(pool.chunks(ticket)), Path(ticket.path))


def test_a_decoder_that_gives_nothing_in_time_is_ended(clips: list[Path]) -> None:
    with DecoderPool(1, RATE, CHUNK, DecodeLimits(timeout_s=1.0)) as pool:
        stuck = pool.slots[0].proc
        stuck.send_signal(signal.SIGSTOP)  # as a decoder hung in a codec would be
        tickets = [pool.submit(str(p)) for p in clips[:2]]
        with pytest.raises(AudioError, match="gave nothing for 1 s"):
            list(pool.chunks(tickets[0]))
        assert stuck.poll() is not None
        assert _same(list(pool.chunks(tickets[1])), clips[1])


def test_a_caller_that_stops_reading_a_file_gets_the_next_files_right(clips: list[Path]) -> None:
    with DecoderPool(1, RATE, CHUNK) as pool:
        tickets = [pool.submit(str(p)) for p in clips[:3]]
        first = pool.chunks(tickets[0])
        next(first)
        first.close()  # e.g. the forward pass raised
        for ticket in tickets[1:]:
            assert _same(list(pool.chunks(ticket)), Path(ticket.path))
    assert all(decoder.proc.poll() is not None for decoder in pool.slots)  # closed: none left


def test_a_decoder_over_its_memory_limit_fails_the_file_not_the_caller(clips: list[Path]) -> None:
    with DecoderPool(1, RATE, CHUNK, DecodeLimits(memory_mb=16)) as pool:  # less than it already maps
        with pytest.raises(AudioError):
            list(pool.chunks(pool.submit(str(clips[1]))))
