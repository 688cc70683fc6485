"""Training schedules compared by wall-clock time: minutes to a validation ROC-AUC, and to the best val_loss.

Each recipe (`name:key=value,...`, config options) trains once per seed on one data set,
in this process, after the features are cached (so no recipe pays for them). The times
come from the run's own TensorBoard records: seconds from the fit's start to the first
validation whose `val_roc_auc` reaches each `--target`, and to the epoch of the best
`val_loss` (where the best checkpoint is taken). Prints a markdown table.

    .venv/bin/python -m benchmarks.schedule --data data/demo --target 0.7 0.73 --seeds 0 1 2 \\
        --recipe before:chunks_per_clip=1,lr=0.001,max_epochs=15,patience=5,mixup=0 \\
        --recipe after:lr=0.003,max_epochs=20,patience=8 [--model tiny]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from autotag.config import make_config
from autotag.data.prepare import prepare_features
from autotag.runs.curves import EVENT_GLOB, EventFileTail
from autotag.store.run_folder import RunFolder, create_run
from autotag.training.fit import fit
from benchmarks.recipes import _recipe


def _validations(run: Path, start: float) -> list[tuple[float, dict[str, float]]]:
    """(seconds since `start`, {tag: value}) of every validation record, in order."""
    points: dict[int, tuple[float, dict[str, float]]] = {}
    for path in sorted(RunFolder(run).tb.glob(EVENT_GLOB)):
        for event in EventFileTail(path).read_new():
            for value in event.summary.value:
                if value.tag in ("val_loss", "val_roc_auc"):
                    at, values = points.setdefault(event.step, (event.wall_time - start, {}))
                    values[value.tag] = value.simple_value
    return [points[step] for step in sorted(points)]


def _minutes(values: list[float | None]) -> str:
    reached = [v / 60 for v in values if v is not None]
    if not reached:
        return "not reached"
    shown = f"{statistics.median(reached):.2f} ({min(reached):.2f}-{max(reached):.2f})"
    missed = len(values) - len(reached)
    return shown + (f", {missed} of {len(values)} never" if missed else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--recipe", action="append", type=_recipe, required=True, help="name:key=value,...")
    parser.add_argument("--target", type=float, nargs="+", default=[0.7], help="validation ROC-AUCs to reach")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--model", default="tiny")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, options in args.recipe:
            to_target: list[list[float | None]] = [[] for _ in args.target]
            to_best, best_auc, total = [], [], []
            for seed in args.seeds:
                config = make_config(data=args.data, model=args.model, seed=seed, accelerator="cpu", **options)
                prepare_features(config)
                run = create_run(config, Path(tmp) / "runs", f"{name}-{seed}")
                start = time.time()
                fit(config, run, log_file=False)
                total.append(time.time() - start)
                points = _validations(run, start)
                scored = [(t, v) for t, v in points if "val_roc_auc" in v]
                for times, target in zip(to_target, args.target):
                    times.append(next((t for t, v in scored if v["val_roc_auc"] >= target), None))
                to_best.append(min((v["val_loss"], t) for t, v in points if "val_loss" in v)[1])
                best_auc.append(max(v["val_roc_auc"] for _, v in scored))
                print(f"{name} seed {seed}: best val ROC-AUC {best_auc[-1]:.3f} in {total[-1]:.0f} s", flush=True)
            rows.append((name, options, to_target, to_best, best_auc, total))
    print(f"\n{args.model} on {args.data}, seeds {' '.join(map(str, args.seeds))}; medians (ranges) in minutes\n")
    targets = " | ".join(f"to val ROC-AUC {t}" for t in args.target)
    print(f"| recipe | options | {targets} | to best val_loss | best val ROC-AUC | whole fit |")
    print("|---|---|" + "---|" * (len(args.target) + 3))
    for name, options, to_target, to_best, best_auc, total in rows:
        shown = ", ".join(f"{k}={v}" for k, v in options.items()) or "-"
        reached = " | ".join(_minutes(times) for times in to_target)
        print(
            f"| {name} | {shown} | {reached} | {_minutes(to_best)} "
            f"| {statistics.mean(best_auc):.3f} | {_minutes(total)} |"
        )


if __name__ == "__main__":
    main()
