"""Decoding of audio from outside (uploads, recordings) that cannot hurt the server.

The decoder runs in a child process (`autotag.audio.process`) with an address-space
limit, a CPU-time limit and a wall-clock timeout: a decoder crash, a hang or a memory
bomb ends that child, and the caller gets an `AudioError` saying what happened.

Starting a decoder (Python, numpy, soundfile) is more than half of the time an upload
spends here: a 30 s 44.1 kHz stereo WAV took 0.25 s with a fresh decoder, 0.11 s with one
started ahead by `prestart()`, which imports its decoder, applies its limits to itself
and waits for the file on stdin. Each decoder still decodes one file and exits; none is
ever reused.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass

import numpy as np

from autotag.audio.decode import AudioError, to_mono_resampled


@dataclass(frozen=True)
class DecodeLimits:
    """What the decoder process of one upload may use: wall-clock time and address space.

    What the audio itself may be (channels, rate, length) is no business of the process:
    every decoder applies the same `autotag.audio.decode.LIMITS`, this one included.
    """

    timeout_s: float = 30.0
    memory_mb: int = 2048


def decode_untrusted(
    data: bytes, sample_rate: int, name: str = "upload", limits: DecodeLimits | None = None
) -> np.ndarray:
    """Mono float32 samples of `data` at `sample_rate`, decoded in a limited child process.

    Raises:
        AudioError: refused, undecodable, too big, too slow, or the decoder crashed.
    """
    limits = limits or DecodeLimits()
    with _take_spare(limits) or _spawn(limits) as proc:
        try:
            stdout, stderr = proc.communicate(data, timeout=limits.timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise AudioError(f"{name}: decoding took longer than {limits.timeout_s:.0f} s; refused") from None
        except BaseException:  # as subprocess.run does: never leave a decoder behind
            proc.kill()
            raise
    if proc.returncode == 2:
        raise AudioError(f"{name}: {stderr.decode('utf-8', 'replace').strip()}")
    if proc.returncode != 0:
        how = _death(proc.returncode, stderr)
        raise AudioError(f"{name}: the decoder {how}; the file is not usable")
    header, _, body = stdout.partition(b"\n")
    meta = json.loads(header)
    mono = np.frombuffer(body, dtype="<f4", count=meta["frames"]).astype(np.float32)
    return to_mono_resampled(mono[:, None], meta["rate"], sample_rate, name)  # refuses odd rates first


def prestart(limits: DecodeLimits | None = None) -> None:
    """Start a decoder for the next `decode_untrusted(..., limits)` unless one is waiting.

    The decoder applies its limits to itself before it reads anything, exactly as one
    started by `decode_untrusted`; its wall-clock timeout runs from when it gets the file.
    A waiting decoder exits when this process does (its stdin closes).
    """
    limits = limits or DecodeLimits()
    with _spares_lock:
        spare = _spares.get(limits)
        if spare is None or spare.poll() is not None:
            _discard(spare)
            _spares[limits] = _spawn(limits)


_spares: dict[DecodeLimits, subprocess.Popen] = {}
_spares_lock = threading.Lock()


def _take_spare(limits: DecodeLimits) -> subprocess.Popen | None:
    """The waiting decoder for `limits`, now this caller's alone; None if there is none alive."""
    with _spares_lock:
        spare = _spares.pop(limits, None)
    if spare is not None and spare.poll() is None:
        return spare
    _discard(spare)
    return None


def _discard(decoder: subprocess.Popen | None) -> None:
    """Close the pipes of a decoder that died while it waited."""
    if decoder is not None:
        for pipe in (decoder.stdin, decoder.stdout, decoder.stderr):
            pipe.close()


def _spawn(limits: DecodeLimits) -> subprocess.Popen:
    args = (limits.memory_mb, int(limits.timeout_s) + 1)
    cmd = [sys.executable, "-m", "autotag.audio.process", *map(str, args)]
    # No preexec_fn (unsafe in a threaded server): the decoder limits itself.
    return subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _death(code: int, stderr: bytes) -> str:
    if code < 0:
        return f"crashed ({signal.Signals(-code).name})"
    if b"MemoryError" in stderr:
        return "ran out of its memory limit"
    return f"failed (exit status {code})"
