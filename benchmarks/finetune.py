"""Starting from a demo run versus from random weights, on a small data set of another vocabulary.

The source is a quick-demo run on the demo set (real instruments), trained here first or
given with `--source`. The target is a user's small set: 40 clips rendered from another
soundfont (TimGM6mb) and tagged in a vocabulary the source never saw (`VOCABULARY`: keys,
winds, plucked, bowed, electronic, percussion), trained with the same epochs from scratch
and with `--init-from` the source, once per seed. Both are scored on 200 other clips of
the target kind, since the 40-clip set's own test split holds four clips. Prints a
markdown table.

    .venv/bin/python -m benchmarks.finetune --data data/demo --seeds 0 1 2 [--source runs/<quick demo>]
"""

from __future__ import annotations

import argparse
import csv
import statistics
import tempfile
from pathlib import Path

from autotag.config import QUICK_DEMO, make_config
from autotag.data.demo import make_demo_dataset
from autotag.data.instruments import OTHER_SOUNDFONT
from autotag.serving.evaluate import evaluate_run
from autotag.store.run_folder import create_run
from autotag.training.fit import fit

# The target's tags: each the union of some demo-set tags (tempo tags dropped).
VOCABULARY = {
    "keys": ("piano", "organ"),
    "winds": ("brass", "reed", "flute"),
    "plucked": ("guitar", "bass"),
    "bowed": ("strings",),
    "electronic": ("synth",),
    "percussion": ("drums",),
}


def _retag(folder: Path) -> Path:
    """Rewrite a rendered set's tags.csv in VOCABULARY's words (splits and artists kept)."""
    path = folder / "tags.csv"
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        old = set(row["tags"].split(";"))
        row["tags"] = ";".join(new for new, parts in VOCABULARY.items() if old & set(parts))
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(r for r in rows if r["tags"])
    return folder


def _span(values: list[float]) -> str:
    return f"{statistics.mean(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the demo set the source run trains on")
    parser.add_argument("--source", type=Path, help="a finished run to start from (default: train the quick demo)")
    parser.add_argument("--clips", type=int, default=40, help="clips in the small target set")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--freeze-epochs", type=int, default=3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        small = _retag(make_demo_dataset(root / "small", clips=args.clips, seed=100, soundfont=OTHER_SOUNDFONT))
        heldout = _retag(make_demo_dataset(root / "heldout", clips=200, seed=101, soundfont=OTHER_SOUNDFONT))
        source = args.source
        if source is None:
            config = make_config(data=str(args.data), **QUICK_DEMO)
            source = create_run(config, root / "runs", "source")
            fit(config, source, log_file=False)
        same = {**QUICK_DEMO, "max_epochs": args.epochs, "patience": args.epochs}  # no early stop: same epochs
        recipes = {
            "from scratch": {},
            f"from the demo run, output layer alone for {args.freeze_epochs} epochs": {
                "init_from": str(source),
                "freeze_epochs": args.freeze_epochs,
            },
            "from the demo run, all layers at once": {"init_from": str(source)},
        }
        scores: dict[str, list[float]] = {name: [] for name in recipes}
        for seed in args.seeds:
            for name, extra in recipes.items():
                config = make_config(data=str(small), seed=seed, **same, **extra)
                run = create_run(config, root / "runs", f"target-{seed}")
                fit(config, run, log_file=False)
                scores[name].append(evaluate_run(run, heldout)["roc_auc_macro"])
                print(f"{name}, seed {seed}: {scores[name][-1]:.3f}", flush=True)
    print(
        f"\n`tiny`, {args.clips} training clips (TimGM6mb, new vocabulary), {args.epochs} epochs, seeds "
        f"{' '.join(map(str, args.seeds))}; ROC-AUC on 200 other clips of the same kind\n"
    )
    print("| start | ROC-AUC, mean (range) |\n|---|---|")
    for name, values in scores.items():
        print(f"| {name} | {_span(values)} |")


if __name__ == "__main__":
    main()
