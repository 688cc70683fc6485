"""TPE with median pruning against random search without pruning, on the same budget of trials.

Each seed runs both searches over the same space on the same data set, one trial at a time,
and reports the best validation metric after N trials, the epochs all its trials trained
(pruned trials end early, so TPE + median may spend less) and the wall time it took. The default space is the Sweep
page's: learning rate (log), batch size, mixup, chunks per clip, for `tiny`.

    .venv/bin/python -m benchmarks.sweep_search --data data/demo [--trials 12] [--seeds 0 1 2]
        [--max-epochs 20] [--metric val_roc_auc] [--space lr=1e-4:1e-1:log ...] [--chunks-per-clip N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from autotag.sweeps import manager as sweeps
from autotag.sweeps.driver import drive
from autotag.sweeps.results import best_row, load_study, trial_rows

SPACE = ["lr=1e-4:1e-1:log", "batch_size=8,16,32", "mixup=0.0:0.4", "chunks_per_clip=1:8"]
RECIPES = {"tpe + median pruner": ("tpe", "median"), "random, no pruner": ("random", "none")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--max-epochs", type=int, default=20)
    parser.add_argument("--metric", default="val_roc_auc", choices=("val_loss", "val_roc_auc", "val_pr_auc"))
    parser.add_argument("--space", nargs="+", default=SPACE)
    parser.add_argument("--chunks-per-clip", type=int, default=None, help="fixed for every trial (not searched)")
    args = parser.parse_args()
    fixed = {"data": str(Path(args.data).resolve()), "model": "tiny", "max_epochs": args.max_epochs, "patience": 8}
    if args.chunks_per_clip:
        fixed["chunks_per_clip"] = args.chunks_per_clip
    results: dict[str, list[tuple[float, float, int, int]]] = {name: [] for name in RECIPES}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for name, (sampler, pruner) in RECIPES.items():
                start = time.perf_counter()
                folder = sweeps.new_sweep(
                    fixed,
                    args.space,
                    trials=args.trials,
                    sampler=sampler,
                    pruner=pruner,
                    metric=args.metric,
                    seed=seed,
                    runs_dir=Path(tmp) / f"runs-{seed}",
                )
                drive(folder)
                minutes = (time.perf_counter() - start) / 60
                study = load_study(folder)
                best = best_row(study)
                rows = trial_rows(study)
                pruned = sum(r.state == "pruned" for r in rows)
                epochs = sum(r.epochs for r in rows)  # the compute spent, whatever else ran on the machine
                results[name].append((best.value if best else float("nan"), minutes, pruned, epochs))
                print(f"seed {seed}, {name}: best {args.metric} {results[name][-1][0]:.4f}, {minutes:.1f} min, "
                      f"{epochs} epochs, {pruned} pruned", flush=True)  # fmt: skip
    print(f"\n{args.trials} trials of tiny, at most {args.max_epochs} epochs each, seeds {args.seeds}:")
    print(f"| search | best {args.metric}, mean (range) | epochs trained, mean | minutes, mean | pruned trials, mean |")
    print("|---|---|---|---|---|")
    for name, rows in results.items():
        values = [v for v, _, _, _ in rows]
        print(
            f"| {name} | {statistics.mean(values):.3f} ({min(values):.3f}-{max(values):.3f}) | "
            f"{statistics.mean(e for *_, e in rows):.0f} | {statistics.mean(m for _, m, _, _ in rows):.1f} | "
            f"{statistics.mean(p for _, _, p, _ in rows):.1f} |"
        )


if __name__ == "__main__":
    main()
