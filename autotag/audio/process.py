"""Decode untrusted audio in a throw-away process: `python -m autotag.audio.process`.

Reads the file's bytes on stdin and writes one JSON line ({"rate": Hz, "frames": n}) and
then n mono float32 samples at the file's own rate on stdout. Any refusal exits with
status 2 and one line on stderr. The audio's limits are those of every decoder
(`autotag.audio.decode.LIMITS`): channels, rate and any stated length from the header
first, then the length again while counting. Nothing is sized from the header's frame
count: samples are read block by block until the data really ends. The parent chooses
the memory and CPU limits, which the decoder applies to itself first, and a timeout
(`autotag.audio.sandbox`).
"""

from __future__ import annotations

import json
import os
import resource
import sys

import numpy as np

from autotag.audio.decode import AudioError, open_audio, read_blocks


def _refuse(message: str) -> None:
    sys.stderr.write(message.replace("\n", " ") + "\n")
    sys.stderr.flush()
    os._exit(2)


#: What the decoder's own messages call the file; the sandbox names it for the user.
_NAME = "the file"


def decode(data: bytes) -> tuple[int, np.ndarray]:
    """Mono float32 samples and their rate, or a refusal (exit 2).

    The same reading as `autotag.audio.decode.load_audio` (header within `LIMITS`, blocks
    counted against them), down-mixed in numpy: importing torch here would cost the
    upload a second and much of the decoder's address-space limit.
    """
    if not data:
        _refuse("the file is empty")
    try:
        with open_audio(data, _NAME) as f:
            rate = f.samplerate
            mono = [block.mean(axis=1, dtype=np.float32) for block in read_blocks(f, _NAME)]
    except MemoryError:
        _refuse("decoding needs more memory than the decoder's limit")
    except AudioError as exc:
        _refuse(str(exc).removeprefix(f"{_NAME}: "))
    return rate, np.concatenate(mono)


def _limit_self(memory_mb: int, cpu_s: int) -> None:
    """Address-space and CPU limits, set by the decoder on itself before it touches the data."""
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
