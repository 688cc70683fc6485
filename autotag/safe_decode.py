"""Decoding of audio from outside (uploads, recordings) that cannot hurt the server.

The decoder runs in a child process (`autotag.decode_worker`) with an address-space
limit, a CPU-time limit and a wall-clock timeout: a decoder crash, a hang or a memory
bomb ends that child, and the caller gets an `AudioError` saying what happened.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from dataclasses import dataclass

import numpy as np

from autotag.audio import AudioError, to_mono_resampled


@dataclass(frozen=True)
class DecodeLimits:
    """What an accepted upload may be. Defaults fit music clips up to 20 minutes."""

    max_seconds: float = 1200.0
    max_channels: int = 8
    min_rate: int = 4000
    max_rate: int = 192000
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
    args = (
        limits.max_seconds,
        limits.max_channels,
        limits.min_rate,
        limits.max_rate,
        limits.memory_mb,
        int(limits.timeout_s) + 1,
    )
    cmd = [sys.executable, "-m", "autotag.decode_worker", *map(str, args)]
    try:
        # No preexec_fn (unsafe in a threaded server): the worker limits itself.
        done = subprocess.run(cmd, input=data, capture_output=True, timeout=limits.timeout_s)
    except subprocess.TimeoutExpired:
        raise AudioError(f"{name}: decoding took longer than {limits.timeout_s:.0f} s; refused") from None
    if done.returncode == 2:
        raise AudioError(f"{name}: {done.stderr.decode('utf-8', 'replace').strip()}")
    if done.returncode != 0:
        how = _death(done.returncode, done.stderr)
        raise AudioError(f"{name}: the decoder {how}; the file is not usable")
    header, _, body = done.stdout.partition(b"\n")
    meta = json.loads(header)
    mono = np.frombuffer(body, dtype="<f4", count=meta["frames"]).astype(np.float32)
    return to_mono_resampled(mono[:, None], meta["rate"], sample_rate)


def _death(code: int, stderr: bytes) -> str:
    if code < 0:
        return f"crashed ({signal.Signals(-code).name})"
    if b"MemoryError" in stderr:
        return "ran out of its memory limit"
    return f"failed (exit status {code})"
