"""Published taggers against training from scratch, at equal wall time on this machine.

Each seed trains on `--data` (the demo set): from scratch (the quick-demo preset, and the
default model under the time budget), and from each published model given with `--model`
(imported from `--pretrained`, a folder of the published files): a linear probe on cached
embeddings; fine-tuning under the time budget (output layer alone for one epoch, then
everything, the backbone at a tenth of the learning rate); and the probe followed by
fine-tuning from it (LP-FT, Kumar et al. 2022), the two together within the budget.
Every run is scored on its own test split and on `--unheard`, a set rendered from another
soundfont, on the tags the two share. `--only` keeps the recipes whose names contain one of
its words. Prints one markdown row per recipe: mean (range) over the seeds.

    .venv/bin/python -m autotag demo-data data/unheard --soundfont /usr/share/sounds/sf2/TimGM6mb.sf2 --seed 1
    .venv/bin/python -m benchmarks.transfer --data data/demo --unheard data/unheard \\
        --pretrained ../shared/pretrained --minutes 10 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from autotag.config import QUICK_DEMO, make_config
from autotag.serving.evaluate import evaluate_run
from autotag.store.run_folder import create_run
from autotag.training.finetune import source_settings
from autotag.training.fit import fit

#: Fine-tuning: the new output layer first, then everything with a slower backbone.
FINE_TUNE = {"freeze_epochs": 1, "backbone_lr_factor": 0.1}
#: A 29.1 s network sees a whole 10 s demo clip (looped) in one chunk: more chunks per clip
#: and epoch would repeat it, and make the budget's first validation come four times later.
ONE_CHUNK = {"fcn": {"chunks_per_clip": 1}, "crnn": {"chunks_per_clip": 1}}


#: A recipe that starts from the run another recipe of the same seed made (`init_from` names it).
AFTER = "after:"


def _recipes(models: list[str], sources: dict[str, Path], minutes: float) -> dict[str, dict]:
    """Config overrides per recipe; LP-FT's `init_from` names its probe recipe, its budget is what the probe left."""
    recipes: dict[str, dict] = {
        "scratch: quick demo (tiny)": dict(QUICK_DEMO),
        f"scratch: default model, {minutes:g} min": {"max_minutes": minutes},
    }
    for name in models:
        source = {**source_settings(sources[name]), "init_from": str(sources[name])}
        one_chunk = ONE_CHUNK.get(source["model"], {})
        probe = f"{name}: linear probe"
        recipes[probe] = {**source, "transfer": "linear-probe"}
        tuned = {**source, **FINE_TUNE, **one_chunk, "max_minutes": minutes}
        recipes[f"{name}: fine-tuning, {minutes:g} min"] = tuned
        lpft = {**source, **one_chunk, "backbone_lr_factor": 0.1, "init_from": AFTER + probe, "max_minutes": minutes}
        recipes[f"{name}: probe, then fine-tuning from it, {minutes:g} min in all"] = lpft
    return recipes


def _resolved(extra: dict, made: dict[str, tuple[Path, float]]) -> dict:
    """`extra` with a recipe's run in place of its name, and the time that run took off the budget."""
    start = str(extra.get("init_from", ""))
    if not start.startswith(AFTER):
        return extra
    run, spent = made[start.removeprefix(AFTER)]
    return {**extra, "init_from": str(run), "max_minutes": round(max(0.5, extra["max_minutes"] - spent / 60), 2)}


def _span(values: list[float | None]) -> str:
    known = [v for v in values if v is not None]
    if not known:
        return "n/a"
    if len(known) == 1:
        return f"{known[0]:.3f}"
    return f"{statistics.mean(known):.3f} ({min(known):.3f}-{max(known):.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the data set every recipe trains on")
    parser.add_argument("--unheard", type=Path, required=True, help="a data set of sounds no run heard")
    parser.add_argument("--pretrained", type=Path, required=True, help="a folder holding the published files")
    parser.add_argument("--model", action="append", default=None, help="published models (mtat-fcn, mtat-musicnn)")
    parser.add_argument("--minutes", type=float, default=10.0, help="time budget of the budgeted recipes")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--only", nargs="+", default=None, help="recipes whose names contain one of these words")
    args = parser.parse_args()
    models = args.model or ["mtat-fcn", "mtat-musicnn"]
    os.environ["AUTOTAG_PRETRAINED_DIR"] = str(args.pretrained.resolve())
    from autotag.pretrained.importer import get

    rows: dict[str, dict[str, list]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp) / "runs"
        sources = {name: get(name, runs_dir=runs) for name in models}
        recipes = _recipes(models, sources, args.minutes)
        if args.only:  # a recipe that starts from another keeps that one
            keep = {r for r in recipes if any(word in r for word in args.only)}
            keep |= {str(recipes[r].get("init_from")).removeprefix(AFTER) for r in keep}
            recipes = {r: extra for r, extra in recipes.items() if r in keep}
        for seed in args.seeds:
            made: dict[str, tuple[Path, float]] = {}
            for recipe, extra in recipes.items():
                config = make_config(data=str(args.data), seed=seed, **_resolved(extra, made))
                run = create_run(config, runs, f"s{seed}")
                start = time.perf_counter()
                metrics = fit(config, run, log_file=False)
                wall = time.perf_counter() - start
                made[recipe] = (run, wall)
                after = str(extra.get("init_from", ""))
                if after.startswith(AFTER):  # LP-FT's time is the probe's and the fine-tuning's
                    wall += made[after.removeprefix(AFTER)][1]
                unheard = evaluate_run(run, args.unheard)["roc_auc_macro"]
                row = rows.setdefault(recipe, {"roc": [], "pr": [], "unheard": [], "min": [], "epochs": []})
                row["roc"].append(metrics.get("roc_auc_macro"))
                row["pr"].append(metrics.get("pr_auc_macro"))
                row["unheard"].append(unheard)
                row["min"].append(wall / 60)
                row["epochs"].append(metrics.get("epochs"))
                print(
                    f"{recipe}, seed {seed}: test ROC-AUC {metrics.get('roc_auc_macro')}, unheard {unheard}, "
                    f"{wall / 60:.1f} min, {metrics.get('epochs')} epochs ({metrics.get('ended_by')})",
                    flush=True,
                )
    print(f"\n{args.data.name}, seeds {' '.join(map(str, args.seeds))}, on {os.cpu_count()} CPU cores\n")
    print("| recipe | test ROC-AUC | test PR-AUC | unheard ROC-AUC | wall time (min) | epochs |")
    print("|---|---|---|---|---|---|")
    for recipe, row in rows.items():
        epochs = "/".join(str(e) for e in row["epochs"])
        cells = [_span(row["roc"]), _span(row["pr"]), _span(row["unheard"]), _span(row["min"]), epochs]
        print(f"| {recipe} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
