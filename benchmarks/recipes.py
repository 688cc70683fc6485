"""Training recipes compared over several seeds: test ROC-AUC, and on a set of unheard sounds.

Each recipe (a name and config options) trains once per seed on the same data set, in this
process and with a shared feature cache. Its best checkpoint is scored on the data set's
test split and, with `--other`, on every clip of another data set (the tags both share):
`demo-data --soundfont TimGM6mb.sf2` renders one whose instruments the model never heard.
Prints a markdown table of means and ranges, and each fit's seconds.

    .venv/bin/python -m benchmarks.recipes --data data/real --other data/heldout \\
        --recipe off: --recipe masks:freq_mask=8,time_mask=20 --seeds 0 1 2 [--model tiny --max-epochs 15]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from autotag.config import make_config
from autotag.runs.folder import create_run
from autotag.serving.evaluate import evaluate_run
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
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, options in args.recipe:
            test, other, seconds = [], [], []
            for seed in args.seeds:
                config = make_config(
                    data=args.data,
                    model=args.model,
                    max_epochs=args.max_epochs,
                    patience=args.patience,
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
                print(
                    f"{name} seed {seed}: test {test[-1]:.3f}" + (f", other {other[-1]:.3f}" if other else ""),
                    flush=True,
                )
            rows.append((name, options, test, other, seconds))
    print(f"\n{args.model}, {args.max_epochs} epochs at most, seeds {' '.join(map(str, args.seeds))}\n")
    print("| recipe | options | test ROC-AUC | unheard sounds ROC-AUC | s per fit |")
    print("|---|---|---|---|---|")
    for name, options, test, other, seconds in rows:
        shown = ", ".join(f"{k}={v}" for k, v in options.items()) or "-"
        print(
            f"| {name} | {shown} | {_span(test)} | {_span(other) if other else '-'} | {statistics.mean(seconds):.0f} |"
        )


if __name__ == "__main__":
    main()
