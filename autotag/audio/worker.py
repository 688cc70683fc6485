"""Decode untrusted audio in a throw-away process: `python -m autotag.audio.worker`.

Reads the file's bytes on stdin and writes one JSON line ({"rate": Hz, "frames": n}) and
then n mono float32 samples at the file's own rate on stdout. Any refusal exits with
status 2 and one line on stderr. The audio's limits are those of every decoder
(`autotag.audio.decode.LIMITS`): channels, rate and any stated length from the header
first, then the length again while counting. Nothing is sized from the header's frame
count: samples are read block by block until the data really ends. The parent chooses
the memory and CPU limits, which the worker applies to itself first, and a timeout
(`autotag.audio.sandbox`).
"""

from __future__ import annotations

import io
import json
import os
import resource
import sys

import numpy as np
import soundfile as sf

from autotag.audio.decode import BLOCK_FRAMES, LIMITS


def _refuse(message: str) -> None:
    sys.stderr.write(message.replace("\n", " ") + "\n")
    sys.stderr.flush()
    os._exit(2)


def decode(data: bytes) -> tuple[int, np.ndarray]:
    """Mono float32 samples and their rate, or a refusal (exit 2)."""
    if not data:
        _refuse("the file is empty")
    try:
        f = sf.SoundFile(io.BytesIO(data))
    except MemoryError:
        _refuse("decoding needs more memory than the decoder's limit")
    except Exception as exc:  # libsndfile reports every unknown or broken format this way
        _refuse(f"not a readable audio file ({str(exc).split(': ', 1)[-1]})")
    with f:
        problem = LIMITS.header_problem(f.channels, f.samplerate, f.frames)
        if problem:
            _refuse(problem)
        blocks, total = [], 0
        while True:
            try:
                block = f.read(BLOCK_FRAMES, dtype="float32", always_2d=True)
            except MemoryError:
                _refuse("decoding needs more memory than the decoder's limit")
            except Exception as exc:  # a stream that breaks part-way through
                _refuse(f"the audio data is damaged after {total / f.samplerate:.1f} s ({exc})")
            if len(block) == 0:
                break
            total += len(block)
            problem = LIMITS.length_problem(total, f.samplerate)
            if problem:
                _refuse(problem)
            if not np.isfinite(block).all():
                _refuse("contains NaN or infinite samples")
            blocks.append(block.mean(axis=1, dtype=np.float32))
        if total == 0:
            _refuse("contains no audio samples")
        return f.samplerate, np.concatenate(blocks)


def _limit_self(memory_mb: int, cpu_s: int) -> None:
    """Address-space and CPU limits, set by the worker on itself before it touches the data."""
    resource.setrlimit(resource.RLIMIT_AS, (memory_mb << 20, memory_mb << 20))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def main() -> None:
    memory_mb, cpu_s = (int(a) for a in sys.argv[1:3])
    _limit_self(memory_mb, cpu_s)
    rate, mono = decode(sys.stdin.buffer.read())
    out = sys.stdout.buffer
    out.write(json.dumps({"rate": rate, "frames": len(mono)}).encode() + b"\n")
    out.write(mono.astype("<f4").tobytes())
    out.flush()


if __name__ == "__main__":
    main()
