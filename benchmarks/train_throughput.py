"""Training throughput of `autotag fit` against a hand-written PyTorch loop, in one run.

Both train the same model on the same cached log-mel chunks with the same batch size,
device and precision. Only time inside training epochs counts (validation excluded on
both sides), so the ratio shows what Lightning, logging and status writing cost. Each
side also reports the share of step time spent waiting for data. The last figures
compare the data pipeline: batches read from the feature cache against batches decoded
and featurized from the audio files every time.

    .venv/bin/python -m benchmarks.train_throughput [--model tiny] [--epochs 4] [--clips 300]
        [--accelerator cpu|gpu] [--precision 32-true|bf16-mixed] [--num-workers N]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch

from autotag.audio.decode import load_audio
from autotag.audio.logmel import LogMel
from autotag.config import TrainConfig, make_config
from autotag.data.datamodule import RandomChunks, TaggingDataModule
from autotag.data.demo import make_demo_dataset
from autotag.data.prepare import prepare_features
from autotag.training.trainer import build_module, build_trainer


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


class EpochTimer(L.Callback):
    """Seconds in each training epoch's batches, and how much of it went to waiting for data."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.waits: list[float] = []
        self._start = self._last_end = 0.0
        self._wait = 0.0

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        _sync()
        self._start = self._last_end = time.perf_counter()
        self._wait = 0.0

    def on_train_batch_start(self, *args: object) -> None:
        self._wait += time.perf_counter() - self._last_end

    def on_train_batch_end(self, *args: object) -> None:
        _sync()
        self._last_end = time.perf_counter()

    def on_validation_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.times.append(time.perf_counter() - self._start)
            self.waits.append(self._wait)


def autotag_run(config: TrainConfig, dataset, cache, run_dir: Path) -> tuple[float, float]:  # noqa: ANN001
    """(samples/s, share of step time waiting for data) of the real trainer."""
    L.seed_everything(config.seed, verbose=False)
    timer = EpochTimer()
    trainer, _ = build_trainer(config, run_dir, len(dataset.split("train")) // config.batch_size, [timer])
    trainer.fit(build_module(config, dataset.labels), datamodule=TaggingDataModule(config, dataset, cache))
    samples = (len(dataset.split("train")) // config.batch_size) * config.batch_size
    best = statistics.median(timer.times[1:])  # the first epoch warms up
    return samples / best, statistics.median(w / t for w, t in zip(timer.waits[1:], timer.times[1:]))


def plain_loop_run(config: TrainConfig, dataset, cache) -> tuple[float, float]:  # noqa: ANN001
    """(samples/s, data-wait share) of a hand-written loop: same model, data, device, precision."""
    torch.manual_seed(config.seed)
    device = torch.device("cuda" if config.accelerator == "gpu" else "cpu")
    net = build_module(config, dataset.labels).net.to(device).train()
    opt = torch.optim.Adam(net.parameters(), lr=config.lr)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    loader = TaggingDataModule(config, dataset, cache).train_dataloader()
    bf16 = config.precision == "bf16-mixed"
    times, waits = [], []
    for _ in range(config.max_epochs):
        _sync()
        start = last = time.perf_counter()
        wait = 0.0
        for mels, targets in loader:
            wait += time.perf_counter() - last
            mels, targets = mels.to(device, non_blocking=True), targets.to(device, non_blocking=True)
            opt.zero_grad()
            autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
            with autocast:
                loss = loss_fn(net(mels), targets)
            loss.backward()
            opt.step()
            _sync()
            last = time.perf_counter()
        times.append(time.perf_counter() - start)
        waits.append(wait)
    samples = len(loader) * config.batch_size
    return samples / statistics.median(times[1:]), statistics.median(w / t for w, t in zip(waits[1:], times[1:]))


def data_pipeline_speedup(config: TrainConfig, dataset, cache, batches: int = 10) -> tuple[float, float]:  # noqa: ANN001
    """Seconds per batch: (from cache, decoding + featurizing each file every time)."""
    clips = dataset.split("train")
    ds = RandomChunks(cache, clips, dataset.labels, config.chunk_frames)
    logmel = LogMel(**config.feature_settings())
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for _ in range(batches):
        torch.stack([ds[int(i)][0] for i in rng.integers(0, len(ds), config.batch_size)])
    cached = (time.perf_counter() - start) / batches
    start = time.perf_counter()
    for _ in range(batches):
        mels = []
        for i in rng.integers(0, len(clips), config.batch_size):
            wave = load_audio(clips[int(i)].path, config.sample_rate)
            offset = int(rng.integers(0, max(1, len(wave) - config.chunk_samples)))
            with torch.no_grad():
                mels.append(logmel(torch.from_numpy(wave[offset : offset + config.chunk_samples])[None])[0])
        torch.stack(mels)
    decoded = (time.perf_counter() - start) / batches
    return cached, decoded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per side; the first is warm-up")
    parser.add_argument("--clips", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--accelerator", default="cpu", choices=("cpu", "gpu"))
    parser.add_argument("--precision", default="32-true", choices=("32-true", "bf16-mixed"))
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--data", help="existing data set (default: a fresh demo set)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or make_demo_dataset(Path(tmp) / "demo", clips=args.clips)
        config = make_config(
            data=str(data),
            model=args.model,
            max_epochs=args.epochs,
            batch_size=args.batch_size,
            accelerator=args.accelerator,
            precision=args.precision,
            num_workers=args.num_workers,
        )
        _, dataset, cache = prepare_features(config, cache_root=Path(tmp) / "cache")
        plain, plain_wait = plain_loop_run(config, dataset, cache)
        ours, our_wait = autotag_run(config, dataset, cache, Path(tmp) / "run")
        cached, decoded = data_pipeline_speedup(config, dataset, cache)
    device = torch.cuda.get_device_name() if args.accelerator == "gpu" else f"CPU, {torch.get_num_threads()} threads"
    print(
        f"model {args.model}, batch {args.batch_size}, {args.precision}, {len(dataset.split('train'))} "
        f"training clips, {device}, {args.num_workers} DataLoader workers"
    )
    print(f"hand-written loop : {plain:8.1f} samples/s, waiting for data {plain_wait:6.1%} of step time")
    print(f"autotag fit       : {ours:8.1f} samples/s, waiting for data {our_wait:6.1%} of step time")
    print(f"ratio fit / loop  : {ours / plain:8.3f}   (target >= 0.97)")
    print(f"batch from cache  : {cached * 1000:8.2f} ms")
    print(f"batch decoded     : {decoded * 1000:8.2f} ms")
    print(f"cache speedup     : {decoded / cached:8.1f}x  (target >= 10x)")


if __name__ == "__main__":
    main()
