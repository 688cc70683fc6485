"""Training throughput of `autotag fit` against a hand-written PyTorch loop, in one run.

Both train the same model on the same cached log-mel chunks with the same batch size;
autotag's figure counts only time inside training epochs (validation excluded on both
sides), so the ratio shows what Lightning, logging and status writing cost. The second
figure compares the data pipeline: batches read from the feature cache against batches
decoded and featurized from the audio files every time.

    .venv/bin/python -m benchmarks.train_throughput [--model tiny] [--epochs 4] [--clips 300]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch

from autotag.audio import load_audio
from autotag.config import make_config
from autotag.data import RandomChunks, TaggingDataModule
from autotag.demo import make_demo_dataset
from autotag.features import LogMel
from autotag.prepare import prepare_features
from autotag.trainer import build_module, build_trainer


class EpochTimer(L.Callback):
    """Seconds spent in each training epoch's batches (validation excluded)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._start = 0.0

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_validation_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.times.append(time.perf_counter() - self._start)


def autotag_samples_per_s(config, dataset, cache, run_dir: Path) -> float:
    L.seed_everything(config.seed, verbose=False)
    timer = EpochTimer()
    trainer, _ = build_trainer(config, run_dir, len(dataset.split("train")) // config.batch_size, [timer])
    trainer.fit(build_module(config, dataset.labels), datamodule=TaggingDataModule(config, dataset, cache))
    samples = (len(dataset.split("train")) // config.batch_size) * config.batch_size
    return samples / statistics.median(timer.times[1:])  # first epoch warms up


def plain_loop_samples_per_s(config, dataset, cache) -> float:
    torch.manual_seed(config.seed)
    net = build_module(config, dataset.labels).net.train()
    opt = torch.optim.Adam(net.parameters(), lr=config.lr)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    loader = TaggingDataModule(config, dataset, cache).train_dataloader()
    times = []
    for _ in range(config.max_epochs):
        start = time.perf_counter()
        for mels, targets in loader:
            opt.zero_grad()
            loss_fn(net(mels), targets).backward()
            opt.step()
        times.append(time.perf_counter() - start)
    samples = len(loader) * config.batch_size
    return samples / statistics.median(times[1:])


def data_pipeline_speedup(config, dataset, cache, batches: int = 10) -> tuple[float, float]:
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
    parser.add_argument("--data", help="existing data set (default: a fresh demo set)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or make_demo_dataset(Path(tmp) / "demo", clips=args.clips)
        config = make_config(
            data=str(data), model=args.model, max_epochs=args.epochs, batch_size=args.batch_size, accelerator="cpu"
        )
        _, dataset, cache = prepare_features(config, cache_root=Path(tmp) / "cache")
        torch.set_num_threads(torch.get_num_threads())
        plain = plain_loop_samples_per_s(config, dataset, cache)
        ours = autotag_samples_per_s(config, dataset, cache, Path(tmp) / "run")
        cached, decoded = data_pipeline_speedup(config, dataset, cache)
    print(
        f"model {args.model}, batch {args.batch_size}, {len(dataset.split('train'))} training clips, "
        f"{torch.get_num_threads()} threads"
    )
    print(f"hand-written loop : {plain:8.1f} samples/s")
    print(f"autotag fit       : {ours:8.1f} samples/s")
    print(f"ratio fit / loop  : {ours / plain:8.3f}   (target >= 0.95)")
    print(f"batch from cache  : {cached * 1000:8.2f} ms")
    print(f"batch decoded     : {decoded * 1000:8.2f} ms")
    print(f"cache speedup     : {decoded / cached:8.1f}x  (target >= 10x)")


if __name__ == "__main__":
    main()
