"""What augmentation costs in `fit`'s training throughput, measured in one run.

The same model, data and batch size train with every augmentation off and with all of
them on (masks, gain, noise, mixup), alternating, so that the machine's drift hits both
sides alike. Only time inside training epochs counts (validation excluded), the first
epoch of each fit is warm-up. Prints samples/s of each side and the ratio on/off.

    .venv/bin/python -m benchmarks.augment_cost [--model tiny] [--epochs 3] [--repeats 3] [--clips 160]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from autotag.config import make_config
from autotag.data.demo import make_demo_dataset
from autotag.data.prepare import prepare_features
from benchmarks.train_throughput import autotag_run

#: Every augmentation on, at settings of the kind the README's ablation uses.
ALL_ON = {"freq_mask": 8, "time_mask": 20, "gain_db": 6.0, "noise_snr_db": 10.0, "mixup": 0.3}
ALL_OFF = dict.fromkeys(ALL_ON, 0)  # mixup is on by default


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per fit; the first is warm-up")
    parser.add_argument("--repeats", type=int, default=3, help="fits per side, alternating")
    parser.add_argument("--clips", type=int, default=160)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--data", help="existing data set (default: a fresh demo set)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or make_demo_dataset(Path(tmp) / "demo", clips=args.clips)
        base = {"data": str(data), "model": args.model, "batch_size": args.batch_size, "max_epochs": args.epochs}
        base |= {"accelerator": "cpu", "patience": args.epochs}
        _, dataset, cache = prepare_features(make_config(**base), cache_root=Path(tmp) / "cache")
        rates: dict[str, list[float]] = {"off": [], "on": []}
        for i in range(args.repeats):
            for side, extra in (("off", ALL_OFF), ("on", ALL_ON)):
                config = make_config(**base, **extra)
                rate, _ = autotag_run(config, dataset, cache, Path(tmp) / f"run-{side}-{i}")
                rates[side].append(rate)
                print(f"{side:>3}: {rate:8.1f} samples/s", flush=True)
    off, on = statistics.median(rates["off"]), statistics.median(rates["on"])
    print(f"{args.model}, batch {args.batch_size}: off {off:.1f}, on {on:.1f} samples/s (medians of {args.repeats})")
    print(f"ratio on/off: {on / off:.3f} (cost {100 * (1 - on / off):.1f} % of throughput)")


if __name__ == "__main__":
    main()
