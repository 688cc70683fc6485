"""Training recipes compared over several seeds: test ROC-AUC, and on a set of unheard sounds.

Each recipe (a name and config options) trains once per seed on the same data set, in this
process and with a shared feature cache. Its best checkpoint is scored on the data set's
test split and, with `--other`, on every clip of another data set (the tags both share):
`demo-data --soundfont TimGM6mb.sf2` renders one whose instruments the model never heard.
With `--robustness gain ...`, each run's robustness report (its test split) gives what every
strength of those perturbations costs in macro ROC-AUC against the clean audio.
Prints a markdown table of means and ranges, and each fit's seconds.

    .venv/bin/python -m benchmarks.recipes --data data/real --other data/heldout \\
        --recipe off: --recipe masks:freq_mask=8,time_mask=20 --seeds 0 1 2 [--model tiny --max-epochs 15]
    .venv/bin/python -m benchmarks.recipes --data data/demo --other data/unheard --robustness gain \\
        --recipe relative: --recipe absolute:level=absolute --model tiny --max-epochs 20 --patience 8 --lr 3e-3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from autotag.config import make_config
from autotag.robustness.report import CLEAN, make_report
from autotag.serving.evaluate import evaluate_run
from autotag.store.run_folder import create_run
from autotag.training.fit import fit


def _recipe(text: str) -> tuple[str, dict[str, str]]:
    """`name:key=value,key=value` (values as the CLI takes them; pydantic converts them)."""
    name, _, options = text.partition(":")
    return name, dict(pair.split("=", 1) for pair in options.split(",") if pair)


def _span(values: list[float]) -> str:
    return f"{statistics.mean(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--other", help="a data set of sounds the model never heard, scored whole")
    parser.add_argument("--recipe", action="append", type=_recipe, required=True, help="name:key=value,...")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--max-epochs", type=int, default=15)
    parser.add_argument("--patience", type=int, default=5)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--robustness", nargs="+", default=[], help="perturbations whose cost each run reports")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, options in args.recipe:
            test, other, seconds = [], [], []
            costs: dict[str, list[float]] = {}
            for seed in args.seeds:
                config = make_config(
                    data=args.data,
                    model=args.model,
                    max_epochs=args.max_epochs,
                    patience=args.patience,
                    lr=args.lr,
                    seed=seed,
                    accelerator="cpu",
                    **options,
                )
                run = create_run(config, Path(tmp) / "runs", f"{name}-{seed}")
                start = time.perf_counter()
                metrics = fit(config, run, log_file=False)
                seconds.append(time.perf_counter() - start)
                test.append(metrics["roc_auc_macro"])
                if args.other:
                    other.append(evaluate_run(run, args.other)["roc_auc_macro"])
                if args.robustness:
                    for column, cost in _costs(run, args.robustness).items():
                        costs.setdefault(column, []).append(cost)
                print(
                    f"{name} seed {seed}: test {test[-1]:.3f}"
                    + (f", other {other[-1]:.3f}" if other else "")
                    + "".join(f", {column} costs {v[-1]:.3f}" for column, v in costs.items()),
                    flush=True,
                )
            rows.append((name, options, test, other, seconds, costs))
    print(f"\n{args.model}, {args.max_epochs} epochs at most, seeds {' '.join(map(str, args.seeds))}\n")
    columns = list(rows[0][5]) if rows else []
    print(
        "| recipe | options | test ROC-AUC | unheard sounds ROC-AUC | "
        + "".join(f"{c} costs | " for c in columns)
        + "s per fit |"
    )
    print("|---" * (5 + len(columns)) + "|")
    for name, options, test, other, seconds, costs in rows:
        shown = ", ".join(f"{k}={v}" for k, v in options.items()) or "-"
        cost_cells = "".join(f"{_span(costs[c])} | " for c in columns)
        print(
            f"| {name} | {shown} | {_span(test)} | {_span(other) if other else '-'} | {cost_cells}"
            f"{statistics.mean(seconds):.0f} |"
        )


def _costs(run: Path, perturbations: list[str]) -> dict[str, float]:
    """Clean macro ROC-AUC minus each perturbed one, from the run's robustness report of its test split."""
    report = make_report(run, perturbations=perturbations)
    clean = report[CLEAN]["roc_auc_macro"]
    return {
        f"{name} {strength}": clean - row["roc_auc_macro"]
        for name in perturbations
        for strength, row in report[name].items()
    }


if __name__ == "__main__":
    main()
