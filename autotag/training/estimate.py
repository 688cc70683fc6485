"""How long a run will take, before it is launched: a few timed training steps on this machine.

A user who picks `shortchunk_cnn` for 600 clips on a 2-core CPU should learn that an
epoch takes minutes before pressing Launch, not after. A real training step of the
chosen network (forward, BCE, backward, Adam) at the chosen input size is timed; the
time per step is kept on disk per machine, device and input, so the Train page times each
setting once. Epochs are scaled from it: training steps, plus validation (a forward pass
costs about a third of a training step), plus what Lightning spends between steps.

The steps are timed in a child process (`python -m autotag.training.estimate`): the
dashboard draws the Train page first, and importing torch there would cost its process
seconds and half a gigabyte before anything is trained or tagged.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from autotag.config import TrainConfig
from autotag.data.formats import Clip
from autotag.paths import default_cache_root

#: Training steps timed after one warm-up step; a few give a stable median.
TIMED_STEPS = 3
#: Chunks per timed step at most: time per chunk is flat above a few on a CPU, and a
#: smaller step keeps the timing of a big model short (shortchunk_cnn: ~0.2 s per chunk).
MAX_TIMED_BATCH = 4
#: A forward pass (validation) against a training step of the same batch.
FORWARD_SHARE = 1 / 3
#: A run longer than this gets a warning on the Train page.
LONG_RUN_S = 3600.0
#: Seconds the timing child may take (importing torch, building the network, four steps).
TIMING_TIMEOUT_S = 300.0


class EstimateError(RuntimeError):
    """The training steps could not be timed; the message says why (the Train page shows it)."""


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


def estimate_run(config: TrainConfig, train: list[Clip], valid: list[Clip]) -> TimeEstimate:
    """The time of `config` on these clips here, from timed steps (cached per machine and input)."""
    import soundfile as sf

    device, per_chunk = chunk_seconds(config.model, config.n_mels, config.chunk_frames, config.accelerator)
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


def chunk_seconds(model: str, n_mels: int, frames: int, accelerator: str) -> tuple[str, float]:
    """The device and the seconds of one training step per chunk of (n_mels, frames), timed
    once per machine and input.

    Raises:
        EstimateError: the timing child failed or took longer than TIMING_TIMEOUT_S.
    """
    key = f"{_machine()}|{accelerator}|{model}|{n_mels}|{frames}"
    cache = _cache_file()
    try:
        known = json.loads(cache.read_text())
    except (OSError, ValueError):
        known = {}
    known = known if isinstance(known, dict) else {}
    entry = known.get(key)
    if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[1], (int, float))):
        known[key] = entry = list(_time_in_child(model, n_mels, frames, accelerator))
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f".{cache.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(known, indent=1))
        os.replace(tmp, cache)
    return str(entry[0]), float(entry[1])


def _time_in_child(model: str, n_mels: int, frames: int, accelerator: str) -> tuple[str, float]:
    """`_time_steps` in a process of its own: its device and seconds per chunk."""
    cmd = [sys.executable, "-m", __name__, model, str(n_mels), str(frames), accelerator]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMING_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise EstimateError(f"timing {model}'s training steps took longer than {TIMING_TIMEOUT_S:.0f} s") from None
    try:
        device, seconds = json.loads(done.stdout.strip().splitlines()[-1])
        return str(device), float(seconds)
    except (ValueError, IndexError, TypeError):
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise EstimateError(f"timing {model}'s training steps failed: {last}") from None


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


def _device(accelerator: str) -> str:
    import torch

    return "cuda" if accelerator != "cpu" and torch.cuda.is_available() else "cpu"


def _machine() -> str:
    """This machine and what sets its speed, without importing torch (its threads follow the cores
    unless OMP_NUM_THREADS says otherwise)."""
    threads = os.environ.get("OMP_NUM_THREADS", "default")
    return f"{platform.node()}/{os.cpu_count()}cpu/{threads}threads/torch{importlib.metadata.version('torch')}"


def _cache_file() -> Path:
    return default_cache_root().parent / "step_times.json"


def main(argv: list[str] | None = None) -> int:
    """`python -m autotag.training.estimate MODEL N_MELS FRAMES ACCELERATOR`: prints `[device, seconds]`."""
    model, n_mels, frames, accelerator = argv if argv is not None else sys.argv[1:]
    device = _device(accelerator)
    print(json.dumps([device, _time_steps(model, int(n_mels), int(frames), device)]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
