"""Log-mel features computed once per (audio files, feature settings), memory-mapped after.

Layout of one cache entry `<cache root>/<key>/`:
  mels.f16    float16, shape (total frames, n_mels), clips concatenated along time
  index.json  {"n_mels", "settings", "clips": {id: [first frame, frames]}, "failed": {id: reason}}
An entry is built in a temporary sibling folder and renamed when complete, so a crash
or a concurrent build never leaves a half-written cache that a later run would trust.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from autotag.audio.decode import AudioError, load_audio
from autotag.audio.logmel import LogMel
from autotag.data.formats import Clip
from autotag.paths import default_cache_root

CACHE_VERSION = 1

Progress = Callable[[int, int], None]


def cache_key(clips: Sequence[Clip], settings: dict) -> str:
    """Changes when any file, its size or mtime, or a feature setting changes."""
    h = hashlib.sha256(json.dumps({"v": CACHE_VERSION, "settings": settings}, sort_keys=True).encode())
    for clip in sorted(clips, key=lambda c: c.id):
        try:
            st = clip.path.stat()
            stamp = f"{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            stamp = "missing"
        h.update(f"{clip.id}\0{clip.path}\0{stamp}\n".encode())
    return h.hexdigest()[:24]


@dataclass
class FeatureCache:
    """Read access to one complete cache entry; safe to pickle into DataLoader workers."""

    folder: Path
    n_mels: int
    clips: dict[str, tuple[int, int]]
    failed: dict[str, str]

    @classmethod
    def open(cls, folder: Path) -> FeatureCache:
        index = json.loads((folder / "index.json").read_text(encoding="utf-8"))
        clips = {k: (int(v[0]), int(v[1])) for k, v in index["clips"].items()}
        return cls(folder, int(index["n_mels"]), clips, dict(index["failed"]))

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_mm", None)  # each process maps the file itself instead of copying it
        return state

    @property
    def mels(self) -> np.ndarray:
        mm = self.__dict__.get("_mm")
        if mm is None:
            total = sum(n for _, n in self.clips.values())
            if total == 0:  # numpy cannot map an empty file
                return np.zeros((0, self.n_mels), dtype=np.float16)
            mm = np.memmap(self.folder / "mels.f16", dtype=np.float16, mode="r", shape=(total, self.n_mels))
            self.__dict__["_mm"] = mm
        return mm

    def frames(self, clip_id: str) -> int:
        return self.clips[clip_id][1]

    def chunk(self, clip_id: str, start: int, length: int) -> np.ndarray:
        """Log-mels of frames [start, start + length), the clip looped past its end (`looped_chunk`).

        Returns: float32 array (n_mels, length).
        """
        first, n = self.clips[clip_id]
        return looped_chunk(self.mels[first : first + n], start, length)


def looped_chunk(mels: np.ndarray, start: int, length: int) -> np.ndarray:
    """Frames [start, start + length) of one clip's (frames, n_mels) log-mels, the clip looped
    past its end: float32 (n_mels, length), what the network takes.

    A clip shorter than a network's window (a 10 s upload for the 29.1 s FCN) is looped, not
    padded with silence, here as in tagging (`serving.tagger`): silence is an input no
    training clip had, and published FCN weights scored macro ROC-AUC 0.64 on the demo set's
    shared tags with their 10 s clips padded, 0.72 looped (README, "Published taggers").
    """
    frames = np.arange(start, start + length) % len(mels)
    return mels[frames].astype(np.float32).T


def mel_f16(logmel: LogMel, wave: np.ndarray) -> np.ndarray:
    """(frames, n_mels) float16 log-mel of a mono wave, on the device `logmel` is on: the
    features as the cache stores them (a robustness report computes its own the same way)."""
    device = next(logmel.buffers()).device
    with torch.no_grad():
        return logmel(torch.from_numpy(wave).to(device)[None])[0].T.cpu().numpy().astype(np.float16)


class _DecodeDataset(torch.utils.data.Dataset):
    """Decodes one clip per item and featurizes it here with `logmel`, or hands the wave
    on when that is None (a GPU featurizes it after); failures come back as messages."""

    def __init__(self, clips: Sequence[Clip], sample_rate: int, logmel: LogMel | None) -> None:
        self.clips = list(clips)
        self.sample_rate = sample_rate
        self.logmel = logmel

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> tuple[str, np.ndarray | None, str | None]:
        clip = self.clips[i]
        try:
            wave = load_audio(clip.path, self.sample_rate)
        except AudioError as exc:
            return clip.id, None, str(exc)
        return clip.id, wave if self.logmel is None else mel_f16(self.logmel, wave), None


def _as_is(item: tuple) -> tuple:
    return item


def _one_thread(_: int) -> None:
    torch.set_num_threads(1)  # workers share the cores; more threads each only thrash


def build_cache(
    clips: Sequence[Clip],
    settings: dict,
    root: Path | None = None,
    workers: int | None = None,
    progress: Progress | None = None,
    device: str | torch.device = "cpu",
) -> FeatureCache:
    """Return the cache entry for `clips` and `settings`, building it when missing.

    Args:
        clips: Clips to featurize; their ids must be unique.
        settings: LogMel keyword arguments (`TrainConfig.feature_settings()`).
        progress: Called with (done, total) after each clip while building.
        device: Where the log-mel front end runs. On a GPU, the loader processes only
            decode and the GPU computes the spectrograms; on a CPU, each loader process
            does both.
    """
    root = Path(root) if root else default_cache_root()
    folder = root / cache_key(clips, settings)
    if (folder / "index.json").is_file():
        return FeatureCache.open(folder)
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{folder.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        index = _write_entry(tmp, clips, settings, workers, progress, torch.device(device))
        try:
            tmp.rename(folder)
        except OSError:
            if not (folder / "index.json").is_file():  # lost a race to a complete entry: fine
                raise
        return FeatureCache(folder, index["n_mels"], index["clips"], index["failed"])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_entry(
    tmp: Path,
    clips: Sequence[Clip],
    settings: dict,
    workers: int | None,
    progress: Progress | None,
    device: torch.device,
) -> dict:
    workers = min(4, os.cpu_count() or 1) if workers is None else workers
    on_device = LogMel(**settings).to(device) if device.type != "cpu" else None
    loader = torch.utils.data.DataLoader(
        _DecodeDataset(clips, settings["sample_rate"], None if on_device is not None else LogMel(**settings)),
        batch_size=None,
        num_workers=workers if len(clips) > 1 else 0,
        collate_fn=_as_is,
        worker_init_fn=_one_thread,
    )
    index: dict = {"n_mels": settings["n_mels"], "settings": settings, "clips": {}, "failed": {}}
    offset = 0
    with (tmp / "mels.f16").open("wb") as fh:
        for done, (clip_id, mel, error) in enumerate(loader, start=1):
            if mel is not None and on_device is not None:  # a waveform: featurize it on the GPU
                mel = mel_f16(on_device, mel)
            if mel is None:
                index["failed"][clip_id] = error
            else:
                fh.write(np.ascontiguousarray(mel).tobytes())
                index["clips"][clip_id] = (offset, int(mel.shape[0]))
                offset += int(mel.shape[0])
            if progress:
                progress(done, len(clips))
        fh.flush()
        os.fsync(fh.fileno())
    (tmp / "index.json").write_text(json.dumps(index), encoding="utf-8")
    return index
