"""A library's decoder process: `python -m autotag.library.process MEMORY_MB SAMPLE_RATE CHUNK_SAMPLES`.

Lives for many files, unlike an upload's decoder (`autotag.audio.process`), whose start
(Python, numpy, soundfile: ~0.2 s) would cost more than decoding a 30 s clip. The same
limits otherwise: the audio's (`autotag.audio.decode.LIMITS`: channels and rate from the
header, then samples read block by block, any length, never sized from the header), an
address-space limit it sets on itself first, no core dumps, and no torch (its import
alone is 0.5 GB and 2 s). Its parent (`autotag.library.decoders`) ends it when a file
gives no chunk for the upload decoder's timeout.

Reads one JSON line per file on stdin: the file's path. Writes, per file, messages of one
kind byte, a little-endian uint32 length and a payload (`KINDS`): the file's sample rate,
then the mono float32 source samples of each chunk of `autotag.audio.decode.iter_chunks`
at that rate (the parent resamples them as `iter_chunks` does), then the end, or a
refusal in one line. Ctrl-C at a terminal reaches the whole process group: the parent
decides, so this process ignores it, and ends when its stdin closes.
"""

from __future__ import annotations

import json
import resource
import signal
import struct
import sys
from pathlib import Path
from typing import BinaryIO

import numpy as np

from autotag.audio.decode import AudioError, chunk_frames, open_audio

#: Message kinds: the rate (ASCII digits), a whole chunk, the shorter last chunk, the end of
#: a file, a refusal (UTF-8, one line, without the file's name).
RATE, CHUNK, LAST, END, REFUSED = b"R", b"C", b"L", b"E", b"X"
KINDS = (RATE, CHUNK, LAST, END, REFUSED)
#: The header of every message: kind, payload length.
HEADER = struct.Struct("<cI")

#: What the decoder's own messages call the file; the parent keeps its path beside them.
_NAME = "the file"


def send(out: BinaryIO, kind: bytes, payload: bytes = b"") -> None:
    out.write(HEADER.pack(kind, len(payload)))
    out.write(payload)


def down_mix(frames: np.ndarray) -> np.ndarray:
    """(frames, channels) -> (frames,): the channels' mean, summed one after the other, which
    gives torch's mean (`iter_chunks`' down-mix) bit for bit for mono and stereo files (and
    most others) at a sixth of `ndarray.mean`'s time over two channels."""
    mono = frames[:, 0].copy()
    for channel in range(1, frames.shape[1]):
        mono += frames[:, channel]
    if frames.shape[1] > 1:
        mono /= np.float32(frames.shape[1])
    return mono


def decode(path: str, sample_rate: int, chunk_samples: int, out: BinaryIO) -> None:
    """Write the messages of one file; a refusal ends them instead of `END`."""
    try:
        with open_audio(Path(path), _NAME, whole=False) as f:
            send(out, RATE, str(f.samplerate).encode())
            for frames, full in chunk_frames(f, _NAME, sample_rate, chunk_samples):
                send(out, CHUNK if full else LAST, down_mix(frames).astype("<f4", copy=False).tobytes())
                out.flush()
    except AudioError as exc:
        send(out, REFUSED, str(exc).removeprefix(f"{_NAME}: ").replace("\n", " ").encode())
    except MemoryError:
        send(out, REFUSED, b"decoding needs more memory than the decoder's limit")
    else:
        send(out, END)
    out.flush()


def main() -> None:
    memory_mb, sample_rate, chunk_samples = (int(a) for a in sys.argv[1:4])
    resource.setrlimit(resource.RLIMIT_AS, (memory_mb << 20, memory_mb << 20))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    out = sys.stdout.buffer
    for line in sys.stdin.buffer:
        decode(json.loads(line), sample_rate, chunk_samples, out)


if __name__ == "__main__":
    main()
