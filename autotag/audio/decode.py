"""The only audio decoder: a path or bytes in, mono float32 at the model rate out.

Everything that reads audio (cache building, tagging, the dashboard) goes through
`load_audio`, so formats, down-mixing and resampling behave the same everywhere.
What audio may be at all (`LIMITS`: channels, sample rate, and the length of a file held
whole) is decided here too, for every way in: `load_audio`, the streaming `iter_chunks`,
and the upload sandbox's decoder process (`autotag.audio.process`).
"""

from __future__ import annotations

import functools
import io
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf

from autotag.errors import AutotagError

AudioSource = str | Path | bytes | BinaryIO

#: Extensions soundfile (libsndfile >= 1.1) decodes; used to filter uploads and folders.
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")


class AudioError(AutotagError):
    """Audio could not be decoded; the message says which file and why."""


#: Frames read at a time: no array is ever sized from what a header claims.
BLOCK_FRAMES = 65536
#: How libsndfile (through soundfile) fails on broken or foreign data.
_DECODE_ERRORS = (sf.LibsndfileError, RuntimeError, TypeError, ValueError, EOFError)
#: What libsndfile reports as the frame count of a stream whose length its header leaves open.
UNKNOWN_FRAMES = 2**63 - 1


@dataclass(frozen=True)
class AudioLimits:
    """What any audio autotag decodes may be: facts about the audio, whoever sends it.

    At most 8 channels (7.1) at 4-192 kHz, checked from the header before any sample is
    decoded, on every way in. A decode that holds the whole file (an upload, a data set's
    clip) also takes at most 20 minutes: checked from the header when it states a length,
    and counted again while decoding, since a header can lie. A streamed read (`iter_chunks`:
    `autotag tag`) holds one chunk at a time and reads any length. How long and how much
    memory a decoder may use are limits of the upload sandbox's process
    (`autotag.audio.sandbox.DecodeLimits`), not of the audio.
    """

    max_seconds: float = 1200.0
    max_channels: int = 8
    min_rate: int = 4000
    max_rate: int = 192000

    def header_problem(self, channels: int, rate: int, frames: int, whole: bool = True) -> str | None:
        """What in a file's header is out of bounds (one line, without the file's name), or None.

        Args:
            whole: The file is to be held whole, so a length its header states is checked too.
        """
        if not 1 <= channels <= self.max_channels:
            return f"{channels} channels; at most {self.max_channels} are accepted"
        if not self.min_rate <= rate <= self.max_rate:
            return f"sample rate {rate} Hz is outside {self.min_rate}..{self.max_rate} Hz"
        return self.length_problem(frames, rate) if whole and frames != UNKNOWN_FRAMES else None

    def length_problem(self, frames: int, rate: int) -> str | None:
        """The refusal of `frames` samples at `rate`, or None when that is short enough."""
        return f"longer than the limit of {self.max_seconds:.0f} s" if frames > self.max_seconds * rate else None


#: The limits of every decoder in autotag (README, "Reliability and security").
LIMITS = AudioLimits()


def _describe(source: AudioSource) -> str:
    if isinstance(source, (str, Path)):
        return str(source)
    return getattr(source, "name", None) or "uploaded audio"


def _reason(exc: Exception) -> str:
    """libsndfile's message without its 'Error opening <object repr>: ' prefix."""
    return re.sub(r"^Error opening .*?: ", "", str(exc)).strip() or type(exc).__name__


def load_audio(source: AudioSource, sample_rate: int, name: str | None = None) -> np.ndarray:
    """Decode `source` to mono float32 samples at `sample_rate`.

    Args:
        source: File path, raw file bytes, or a binary file object.
        sample_rate: Target rate in Hz.
        name: What to call the audio in error messages (default: its path or file name).

    Returns:
        Array of shape (samples,), float32, nominally in [-1, 1].

    Raises:
        AudioError: missing, empty, undecodable, non-finite, or outside `LIMITS` (one line
            naming the audio and the limit).
    """
    name = name or _describe(source)
    with open_audio(source, name) as f:
        rate = f.samplerate
        mono = [_mono(block) for block in read_blocks(f, name)]  # a block at a time: memory of the mono result
    return to_mono_resampled(np.concatenate(mono)[:, None], rate, sample_rate, name)


def open_audio(source: AudioSource, name: str, whole: bool = True) -> sf.SoundFile:
    """An open SoundFile whose header is within `LIMITS`.

    Args:
        whole: The file is to be held whole (see `AudioLimits`): a length stated is checked too.

    Raises:
        AudioError: missing, unreadable, or out of bounds by its header.
    """
    if isinstance(source, (str, Path)):
        if not Path(source).is_file():
            raise AudioError(f"{name}: file not found")
        source = str(source)
    try:
        f = sf.SoundFile(io.BytesIO(source) if isinstance(source, bytes) else source)
    except _DECODE_ERRORS as exc:
        raise AudioError(f"{name}: not a readable audio file ({_reason(exc)})") from None
    problem = LIMITS.header_problem(f.channels, f.samplerate, f.frames, whole)
    if problem:
        f.close()
        raise AudioError(f"{name}: {problem}")
    return f


def read_blocks(f: sf.SoundFile, name: str) -> Iterator[np.ndarray]:
    """(frames, channels) float32 blocks of a file held whole, until its data really ends.

    Nothing is sized from the header's frame count, and the length is counted against
    `LIMITS` as the blocks come, since a header can lie.

    Raises:
        AudioError: damaged part-way, NaN or infinite samples, longer than `LIMITS` allow, or empty.
    """
    total = 0
    while len(block := _read(f, BLOCK_FRAMES, total, name)):
        total += len(block)
        problem = LIMITS.length_problem(total, f.samplerate)
        if problem:
            raise AudioError(f"{name}: {problem}")
        yield block
    if total == 0:
        raise AudioError(f"{name}: contains no audio samples")


def _read(f: sf.SoundFile, frames: int, done: int, name: str) -> np.ndarray:
    """The next `frames` (frames, channels) float32 samples after `done`; fewer at the end.

    Raises:
        AudioError: the stream breaks there, or holds NaN or infinite samples.
    """
    try:
        block = f.read(frames, dtype="float32", always_2d=True)
    except _DECODE_ERRORS as exc:
        raise AudioError(f"{name}: damaged after {done / f.samplerate:.1f} s ({_reason(exc)})") from None
    if not np.isfinite(block).all():
        raise AudioError(f"{name}: contains NaN or infinite samples")
    return block


def _mono(frames: np.ndarray) -> np.ndarray:
    """(frames, channels) -> (frames,): the channels' mean, computed as `to_mono_resampled` does."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(frames)).mean(dim=1).numpy()


def to_mono_resampled(frames: np.ndarray, rate: int, sample_rate: int, name: str = "audio") -> np.ndarray:
    """Down-mix (frames, channels) audio and resample it, both in torch.

    Args:
        frames: Array of shape (samples, channels), float32.
        rate: Its sample rate in Hz.
        sample_rate: Target rate in Hz.
        name: What to call the audio in error messages.

    Returns:
        Array of shape (samples * sample_rate / rate,), float32.

    Raises:
        AudioError: a rate whose resampling kernel would take gigabytes to build.
    """
    import torch

    wave = torch.from_numpy(np.ascontiguousarray(frames)).mean(dim=1)
    if rate != sample_rate:
        rate, sample_rate = int(rate), int(sample_rate)
        kernel = resample_kernel_size(rate, sample_rate)
        if kernel > MAX_RESAMPLE_KERNEL:
            raise AudioError(
                f"{name}: sample rate {rate} Hz cannot be converted to {sample_rate} Hz at a bounded cost; "
                "save the file at a common rate (e.g. 44100 or 48000 Hz)"
            )
        if kernel <= _CACHED_KERNEL_MAX:
            wave = _resampler(rate, sample_rate)(wave)
        else:
            import torchaudio.functional as AF

            wave = AF.resample(wave, orig_freq=rate, new_freq=sample_rate)
    return wave.numpy().astype(np.float32, copy=False)


#: Resampling kernels up to this many floats (4 MB) are kept; 44.1 -> 16 kHz needs 76,000.
_CACHED_KERNEL_MAX = 1 << 20
#: Larger kernels (64 MB; the usual rates need < 300,000 floats) are refused, not built.
MAX_RESAMPLE_KERNEL = 1 << 24


def resample_kernel_size(rate: int, sample_rate: int) -> int:
    """Floats in torchaudio's sinc kernel from `rate` to `sample_rate` (default settings).

    Small for the usual rates (76,000 for 44.1 -> 16 kHz), huge when the rates share no
    large divisor: 706 million (2.8 GB, and several times that while it is built) for
    44,101 -> 16,000 Hz.
    """
    g = math.gcd(rate, sample_rate)
    orig, new = rate // g, sample_rate // g
    width = math.ceil(6 * orig / (min(orig, new) * 0.99))
    return new * (orig + 2 * width)


@functools.lru_cache(maxsize=8)
def _resampler(rate: int, sample_rate: int):  # noqa: ANN202 - torchaudio.transforms.Resample (torch imported lazily)
    """torchaudio's resampler with its sinc kernel built once per pair of rates.

    `torchaudio.functional.resample` builds the kernel on every call, i.e. for every chunk
    of a streamed file: about 1 ms of the 2 ms a 3.7 s chunk takes from 44.1 to 16 kHz.
    A float32 kernel is what `functional.resample` builds for float32 input, so the samples
    are bit-identical. Its forward only reads the kernel: safe to share between threads.
    """
    import torch
    from torchaudio.transforms import Resample

    return Resample(rate, sample_rate, dtype=torch.float32)


def iter_chunks(path: str | Path, sample_rate: int, chunk_samples: int) -> Iterator[np.ndarray]:
    """Mono chunks of `chunk_samples` at `sample_rate`, read from a file a chunk at a time.

    Memory stays that of one chunk whatever the file's length. The source frames of chunk k
    are those that map to [k * chunk_samples, (k + 1) * chunk_samples) at the target rate,
    so chunks are resampled on their own without drifting; only the last may be shorter.

    Raises:
        AudioError: missing, undecodable, empty, non-finite, or outside `LIMITS` by its
            channels or rate (any length is read: memory is one chunk).
    """
    name = str(path)
    with open_audio(Path(path), name, whole=False) as f:
        for frames, full in chunk_frames(f, name, sample_rate, chunk_samples):
            chunk = to_mono_resampled(frames, f.samplerate, sample_rate, name)
            yield chunk[:chunk_samples] if full else chunk


def chunk_frames(f: sf.SoundFile, name: str, sample_rate: int, chunk_samples: int) -> Iterator[tuple[np.ndarray, bool]]:
    """The source frames (frames, channels) of each chunk of `iter_chunks`, at the file's own
    rate and not yet resampled, and whether the chunk is whole (else it is the last, shorter).

    Torch-free: a library's decoder processes (`autotag.library.process`) read files so, and
    their parent resamples each chunk as `iter_chunks` does.

    Raises:
        AudioError: damaged part-way, non-finite, or empty.
    """
    ratio = f.samplerate / sample_rate
    k, read = 0, 0
    while True:
        want = round((k + 1) * chunk_samples * ratio) - read
        frames = _read(f, want, read, name)
        if len(frames) == 0:
            break
        read += len(frames)
        full = len(frames) == want
        yield frames, full
        if not full:
            break
        k += 1
    if read == 0:
        raise AudioError(f"{name}: contains no audio samples")
