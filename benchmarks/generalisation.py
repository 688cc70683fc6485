"""Per-tag ROC-AUC of trained runs: on their own test split, and on sounds they never heard.

The demo set's test split holds artists the model never heard, but the same soundfont; a
set rendered from another soundfont (`demo-data OUT --soundfont .../TimGM6mb.sf2 --seed 1`)
stands in for recordings. Give finished runs (`--run`, e.g. the quick demo's and the
default model's), or let this train a preset once per seed on `--data` first:

    .venv/bin/python -m benchmarks.generalisation --other data/unheard --run runs/<name> [--run ...]
    .venv/bin/python -m benchmarks.generalisation --other data/unheard --train quick --data data/demo --seeds 0 1 2

Prints a markdown table: one row per tag, mean (and range) over the runs of each column.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from autotag.config import QUICK_DEMO, make_config
from autotag.serving.evaluate import evaluate_run
from autotag.store.run_folder import RunFolder, create_run
from autotag.training.fit import fit

PRESETS = {"quick": QUICK_DEMO, "default": {}}


def _cell(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ({min(values):.2f}-{max(values):.2f})"


def _per_tag(scores: dict) -> dict[str, float]:
    return {t: v["roc_auc"] for t, v in scores["per_tag"].items() if v["roc_auc"] is not None}


def table(runs: list[Path], other: Path) -> str:
    """The markdown table of per-tag ROC-AUC (test split, other set) over `runs`."""
    test, unheard, positives = [], [], {}
    for run in runs:
        own = evaluate_run(run, RunFolder(run).read_config()["data"], split="test")
        far = evaluate_run(run, other)
        test.append(_per_tag(own) | {"macro": own["roc_auc_macro"]})
        unheard.append(_per_tag(far) | {"macro": far["roc_auc_macro"]})
        positives = {t: (own["per_tag"][t]["positives"], v["positives"]) for t, v in far["per_tag"].items()}
        print(f"{run.name}: test {own['roc_auc_macro']:.3f}, unheard {far['roc_auc_macro']:.3f}", flush=True)
    lines = [
        "| tag | test split ROC-AUC | unheard sounds ROC-AUC | positives (test / unheard) |",
        "|---|---|---|---|",
    ]
    for tag in [*positives, "macro"]:
        count = "{} / {}".format(*positives[tag]) if tag in positives else ""
        row = [_cell([s[tag] for s in test if tag in s]), _cell([s[tag] for s in unheard if tag in s]), count]
        lines.append(f"| {'**macro**' if tag == 'macro' else tag} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """--other, and the runs to score: finished ones (--run) or a preset trained per seed (--train)."""
    parser.add_argument("--other", type=Path, required=True, help="a data set of sounds the runs never heard")
    parser.add_argument("--run", type=Path, action="append", default=[], help="a finished run folder")
    parser.add_argument("--train", choices=PRESETS, help="train this preset on --data once per seed first")
    parser.add_argument("--data", type=Path, help="the data set to train on (with --train)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])


def runs_to_score(parser: argparse.ArgumentParser, args: argparse.Namespace, runs_dir: Path) -> list[Path]:
    """The --run folders, or the preset trained once per seed into `runs_dir`."""
    if bool(args.train) == bool(args.run) or (args.train and not args.data):
        parser.error("give finished runs with --run, or --train PRESET --data DIR")
    runs = list(args.run)
    for seed in args.seeds if args.train else []:
        config = make_config(data=str(args.data), seed=seed, **PRESETS[args.train])
        run = create_run(config, runs_dir, f"{args.train}-{seed}")
        fit(config, run, log_file=False)
        runs.append(run)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_arguments(parser)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        runs = runs_to_score(parser, args, Path(tmp) / "runs")
        print()
        print(table(runs, args.other))


if __name__ == "__main__":
    main()
