"""How long a run will take, before it is launched: a few timed training steps on this machine.

A user who picks `shortchunk_cnn` for 600 clips on a 2-core CPU should learn that an
epoch takes minutes before pressing Launch, not after. A real training step of the
chosen network (forward, BCE, backward, Adam) at the chosen input size is timed; the
time per step is kept on disk per machine, device and input, so the Train page times each
setting once. Epochs are scaled from it: training steps, plus validation (a forward pass
costs about a third of a training step), plus what Lightning spends between steps.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from autotag.config import TrainConfig
from autotag.data.formats import Clip

#: Training steps timed after one warm-up step; a few give a stable median.
TIMED_STEPS = 3
#: Chunks per timed step at most: time per chunk is flat above a few on a CPU, and a
#: smaller step keeps the timing of a big model short (shortchunk_cnn: ~0.2 s per chunk).
MAX_TIMED_BATCH = 4
#: A forward pass (validation) against a training step of the same batch.
FORWARD_SHARE = 1 / 3
#: A run longer than this gets a warning on the Train page.
LONG_RUN_S = 3600.0


@dataclass(frozen=True)
class TimeEstimate:
    """Seconds per epoch and for every epoch of a run (early stopping may end it sooner)."""

    device: str
    chunk_seconds: float  # per training chunk, as timed
    steps_per_epoch: int
    epoch_s: float
    run_s: float

    @property
    def long(self) -> bool:
        return self.run_s > LONG_RUN_S


def human_duration(seconds: float) -> str:
    """`42 s`, `7 min`, `2.5 h`: as precise as an estimate deserves."""
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def estimate_run(config: TrainConfig, train: list[Clip], valid: list[Clip]) -> TimeEstimate:
    """The time of `config` on these clips here, from timed steps (cached per machine and input)."""
    import soundfile as sf

    device = _device(config)
    per_chunk = chunk_seconds(config.model, config.n_mels, config.chunk_frames, device)
    train_chunks = len(train) * config.chunks_per_clip
    steps = max(1, train_chunks // config.batch_size)
    lengths = []
    for clip in valid[:20]:  # header reads only: the clip length decides how many chunks validation scores
        try:
            lengths.append(sf.info(str(clip.path)).duration)
        except (OSError, RuntimeError):
            continue
    per_clip = max(1, min(config.eval_chunks, int(statistics.median(lengths or [0.0]) // config.chunk_seconds)))
    if config.transfer == "linear-probe":  # one forward pass per chunk; the output layer's epochs are nothing
        embed = (len(train) + len(valid)) * per_clip * FORWARD_SHARE * per_chunk
        return TimeEstimate(device, per_chunk, steps, 0.0, embed)
    epoch = (steps * config.batch_size + len(valid) * per_clip * FORWARD_SHARE) * per_chunk
    run = epoch * config.max_epochs
    if config.max_minutes:  # the budget ends training after the epoch it runs out in, at the latest
        run = min(run, max(config.max_minutes * 60, epoch))
    return TimeEstimate(device, per_chunk, steps, epoch, run)


def chunk_seconds(model: str, n_mels: int, frames: int, device: str) -> float:
    """Seconds of one training step per chunk of (n_mels, frames), timed once per machine and input."""
    key = f"{_machine()}|{device}|{model}|{n_mels}|{frames}"
    cache = _cache_file()
    try:
        known = json.loads(cache.read_text())
    except (OSError, ValueError):
        known = {}
    if key not in known:
        known[key] = _time_steps(model, n_mels, frames, device)
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f".{cache.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(known, indent=1))
        os.replace(tmp, cache)
    return float(known[key])


def _time_steps(model: str, n_mels: int, frames: int, device: str) -> float:
    import torch

    from autotag.models.architectures import build_model

    net = build_model(model, 50).to(device).train()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    x = torch.randn(MAX_TIMED_BATCH, n_mels, frames, device=device) * 10 - 40
    y = (torch.rand(MAX_TIMED_BATCH, 50, device=device) > 0.9).float()
    times = []
    for _ in range(TIMED_STEPS + 1):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss_fn(net(x), y).backward()
        optimizer.step()
        if device != "cpu":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:]) / MAX_TIMED_BATCH


def _device(config: TrainConfig) -> str:
    import torch

    return "cuda" if config.accelerator != "cpu" and torch.cuda.is_available() else "cpu"


def _machine() -> str:
    import torch

    return f"{platform.node()}/{os.cpu_count()}cpu/{torch.get_num_threads()}threads/torch{torch.__version__}"


def _cache_file() -> Path:
    from autotag.data.cache import default_cache_root

    return default_cache_root().parent / "step_times.json"
