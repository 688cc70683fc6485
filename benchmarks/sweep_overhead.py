"""What a sweep costs per trial on top of launching the same runs by hand, measured in one run.

The same K configs (`tiny` at K learning rates) train twice, one at a time, each in a fresh
trainer process: once launched by hand (`manager.launch`, then waiting for the run to end,
as a script would) and once as a sweep (grid sampler over those learning rates, no pruner,
driven in this process). The sides alternate over the repeats, so the machine's drift hits
both alike. Prints the wall time of each side and the sweep's overhead per trial.

    .venv/bin/python -m benchmarks.sweep_overhead [--trials 4] [--repeats 2] [--max-epochs 2]
        [--data data/demo | --clips 60]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from autotag.config import make_config
from autotag.data.demo import make_demo_dataset
from autotag.data.prepare import prepare_features
from autotag.runs import manager
from autotag.sweeps import manager as sweeps
from autotag.sweeps.driver import POLL_S, drive

LRS = (1e-3, 2e-3, 3e-3, 5e-3, 1e-2, 2e-2, 3e-2, 5e-2)


def by_hand(fixed: dict, lrs: tuple[float, ...], runs_dir: Path) -> float:
    start = time.perf_counter()
    for lr in lrs:
        run = manager.launch(make_config(**fixed, lr=lr), runs_dir)
        while not manager.derive_state(run).final:
            time.sleep(POLL_S)  # as often as the sweep's driver looks (no pruner)
    return time.perf_counter() - start


def as_sweep(fixed: dict, lrs: tuple[float, ...], runs_dir: Path) -> float:
    start = time.perf_counter()
    folder = sweeps.new_sweep(
        fixed, [f"lr={','.join(map(str, lrs))}"], trials=len(lrs), sampler="grid", pruner="none", runs_dir=runs_dir
    )
    drive(folder)  # the driver's loop, as `sweep` runs it
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=4, choices=range(2, len(LRS) + 1))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--clips", type=int, default=60)
    parser.add_argument("--max-epochs", type=int, default=2)
    parser.add_argument("--data", help="an existing data set, e.g. data/demo (default: --clips synthetic clips)")
    args = parser.parse_args()
    os.environ["AUTOTAG_MAX_RUNS"] = "1"
    lrs = LRS[: args.trials]
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["AUTOTAG_CACHE_DIR"] = str(Path(tmp) / "cache")
        data = (
            Path(args.data).resolve()
            if args.data
            else make_demo_dataset(Path(tmp) / "demo", clips=args.clips, synthetic=True)
        )
        fixed = {"data": str(data), "model": "tiny", "max_epochs": args.max_epochs, "patience": args.max_epochs}
        fixed |= {"accelerator": "cpu"} | ({} if args.data else {"chunks_per_clip": 1})
        prepare_features(make_config(**fixed))  # both sides find the features cached
        times: dict[str, list[float]] = {"by hand": [], "sweep": []}
        for i in range(args.repeats):
            sides = (("by hand", by_hand), ("sweep", as_sweep))
            for side, fn in sides if i % 2 == 0 else sides[::-1]:
                seconds = fn(fixed, lrs, Path(tmp) / f"runs-{side.replace(' ', '-')}-{i}")
                times[side].append(seconds)
                print(f"{side:>8}: {seconds:6.1f} s for {len(lrs)} runs", flush=True)
    hand, sweep = statistics.median(times["by hand"]), statistics.median(times["sweep"])
    what = args.data or f"{args.clips} synthetic clips, 1 chunk per clip"
    print(f"{len(lrs)} trials of tiny on {what}, {args.max_epochs} epochs each:")
    print(f"by hand {hand:.1f} s, sweep {sweep:.1f} s (medians of {args.repeats})")
    print(f"sweep overhead: {100 * (sweep / hand - 1):.1f} % ({(sweep - hand) / len(lrs):.2f} s per trial)")


if __name__ == "__main__":
    main()
