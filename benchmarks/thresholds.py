"""Do the tags the Tag page shows hold up on sounds the model never heard?

For each run, the validation split's clip scores (exactly as training scored them) give
each threshold rule's promise: micro precision and recall over the tags at its thresholds.
The unheard set (`demo-data OUT --soundfont .../TimGM6mb.sf2 --seed 1`) is then tagged as
the Tag page tags an upload (`Tagger.predict`), and the same thresholds decide its tags:
micro precision and recall there, and the tag that fires most often against its true rate
(how often it is on / how often it is true). Two rules on the same scores: best F1 per tag
alone (the rule before shrinkage), and the one training writes now (`training.thresholds`).
Only tags both data sets have count.

    .venv/bin/python -m benchmarks.thresholds --other data/unheard --train quick --data data/demo --seeds 0 1 2 \\
        [--keep runs-bench]   # then `benchmarks.generalisation --run` on the same runs
    .venv/bin/python -m benchmarks.thresholds --other data/unheard --run runs/<name> [--run ...]

Prints a markdown table: one row per rule, mean (and range) over the runs.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from autotag.audio.decode import load_audio
from autotag.config import load_config
from autotag.data.formats import load_dataset, multi_hot
from autotag.data.prepare import open_dataset
from autotag.runs.folder import RunFolder
from autotag.serving.evaluate import Scorer
from autotag.training.thresholds import best_f1_cut, tune_thresholds
from benchmarks.generalisation import add_run_arguments, runs_to_score


def own_best_f1(probs: np.ndarray, targets: np.ndarray, labels: list[str]) -> dict[str, float]:
    """The rule before shrinkage: each tag's best-F1 threshold on validation (0.5 without positives)."""
    return {
        t: best_f1_cut(probs[:, j], targets[:, j].astype(bool))[0] if targets[:, j].any() else 0.5
        for j, t in enumerate(labels)
    }


def shrunk(probs: np.ndarray, targets: np.ndarray, labels: list[str]) -> dict[str, float]:
    return tune_thresholds(probs, targets, labels)["thresholds"]


RULES: dict[str, Callable[[np.ndarray, np.ndarray, list[str]], dict[str, float]]] = {
    "best F1 per tag": own_best_f1,
    "best F1 per tag, shrunk toward a shared threshold (autotag)": shrunk,
}


def micro(on: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    hits = float((on & truth).sum())
    return hits / max(on.sum(), 1), hits / max(truth.sum(), 1)


def measure(run: Path, other: Path) -> dict[str, dict[str, float]]:
    """Per rule: promised and delivered micro precision and recall, and the worst firing ratio."""
    scorer = Scorer.load(run)
    labels = scorer.tagger.labels
    _, own = open_dataset(load_config(RunFolder(run).config))
    unheard = load_dataset(other, "auto")
    shared = [t for t in labels if t in unheard.labels]
    cols = [labels.index(t) for t in shared]
    valid = own.split("valid")
    rows = [scorer.clip_probs(load_audio(c.path, scorer.sample_rate)) for c in valid]
    kept = [i for i, r in enumerate(rows) if r is not None]
    v_probs = np.stack([rows[i] for i in kept])
    v_truth = multi_hot([valid[i] for i in kept], labels)
    heard = [(c, scorer.tagger.predict(c.path)) for c in unheard.clips]
    heard = [(c, p) for c, p in heard if not p.silent]
    u_probs = np.array([[p.clip[t] for t in shared] for _, p in heard])
    u_truth = multi_hot([c for c, _ in heard], shared).astype(bool)
    out = {}
    for rule, tune in RULES.items():
        cut = tune(v_probs, v_truth, labels)
        v_on = v_probs[:, cols] >= np.array([cut[t] for t in shared])
        u_on = u_probs >= np.array([cut[t] for t in shared])
        promised, delivered = micro(v_on, v_truth[:, cols].astype(bool)), micro(u_on, u_truth)
        rate = u_on.mean(0) / np.maximum(u_truth.mean(0), 1 / len(u_truth))
        worst = int(np.argmax(rate))
        out[rule] = {
            "promised precision": promised[0],
            "promised recall": promised[1],
            "unheard precision": delivered[0],
            "unheard recall": delivered[1],
            "most over-firing tag: on / true rate": float(rate[worst]),
            "worst tag": shared[worst],
        }
        print(
            f"{run.name} {rule}: promised P {promised[0]:.3f} R {promised[1]:.3f}; unheard P {delivered[0]:.3f} "
            f"R {delivered[1]:.3f}; {shared[worst]} fires {rate[worst]:.2f}x its true rate",
            flush=True,
        )
    return out


def _cell(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ({min(values):.2f}-{max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_arguments(parser)
    parser.add_argument("--keep", type=Path, help="train into this runs folder and keep the runs (default: discard)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        runs = runs_to_score(parser, args, args.keep or Path(tmp) / "runs")
        results = [measure(run, args.other) for run in runs]
    columns = [k for k in results[0][next(iter(RULES))] if k != "worst tag"]
    print(f"\n{len(runs)} run(s); unheard: {args.other}\n")
    print("| rule | " + " | ".join(columns) + " | tags that over-fire most |")
    print("|---" * (len(columns) + 2) + "|")
    for rule in RULES:
        cells = [_cell([r[rule][c] for r in results]) for c in columns]
        worst = ", ".join(sorted({r[rule]["worst tag"] for r in results}))
        print(f"| {rule} | " + " | ".join(cells) + f" | {worst} |")


if __name__ == "__main__":
    main()
