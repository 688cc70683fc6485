"""Do the tags the Tag page shows hold up on sounds the model never heard?

For each run, the validation split's clip scores (exactly as training scored them) tune
each threshold rule; its promise is micro precision and recall over the tags at those
thresholds, on the validation split itself (in-sample) and on the test split (held out: the
figure training writes and the Tag page shows). The unheard set (`demo-data OUT --soundfont
.../TimGM6mb.sf2 --seed 1`) is then tagged as the Tag page tags an upload
(`Tagger.predict`), and the same thresholds decide its tags: micro precision and recall
there, and the tag that fires most often against its true rate (how often it is on / how
often it is true). Three rules on the same scores: best F1 per tag alone (the first rule),
best F1 shrunk toward a shared threshold (the second) and the precision-recall break-even
shrunk the same way (`training.thresholds`, the rule now). Only tags both data sets have count.

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
from autotag.data.formats import Clip, load_dataset, multi_hot
from autotag.data.prepare import open_dataset
from autotag.serving.evaluate import Scorer
from autotag.store.run_folder import RunFolder
from autotag.training.thresholds import PRIOR_POSITIVES, precision_recall, tune_thresholds
from benchmarks.generalisation import add_run_arguments, runs_to_score

Rule = Callable[[np.ndarray, np.ndarray, list[str]], dict[str, float]]


def best_f1_cut(p: np.ndarray, y: np.ndarray) -> float:
    """The threshold that maximises F1 of scores `p` against 0/1 `y`, midway between distinct scores."""
    order = np.argsort(-p, kind="stable")
    sorted_p, hits = p[order], y[order].astype(bool)
    f1 = 2 * np.cumsum(hits) / (np.arange(1, len(p) + 1) + hits.sum())
    best = int(np.argmax(np.where(np.append(sorted_p[:-1] > sorted_p[1:], True), f1, -1)))
    below = sorted_p[best + 1] if best + 1 < len(p) else 0.0
    return float((sorted_p[best] + below) / 2)


def own_best_f1(probs: np.ndarray, targets: np.ndarray, labels: list[str]) -> dict[str, float]:
    """The first rule: each tag's best-F1 threshold on validation (0.5 without positives)."""
    return {t: best_f1_cut(probs[:, j], targets[:, j]) if targets[:, j].any() else 0.5 for j, t in enumerate(labels)}


def shrunk_best_f1(probs: np.ndarray, targets: np.ndarray, labels: list[str]) -> dict[str, float]:
    """The second rule: best F1 per tag averaged with the best shared cut, weighted by positives."""
    shared = best_f1_cut(probs.ravel(), targets.ravel())
    own = own_best_f1(probs, targets, labels)
    n = targets.astype(bool).sum(0)
    return {t: (n[j] * own[t] + PRIOR_POSITIVES * shared) / (n[j] + PRIOR_POSITIVES) for j, t in enumerate(labels)}


RULES: dict[str, Rule] = {
    "best F1 per tag": own_best_f1,
    "best F1 per tag, shrunk toward a shared threshold": shrunk_best_f1,
    "break-even per tag, shrunk toward a shared threshold (autotag)": lambda p, y, labels: tune_thresholds(
        p, y, labels
    )["thresholds"],
}


def split_scores(scorer: Scorer, clips: list[Clip], labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Clip probabilities of a split of the run's own data set, scored as training scores it."""
    rows = [scorer.clip_probs(load_audio(c.path, scorer.sample_rate)) for c in clips]
    kept = [i for i, r in enumerate(rows) if r is not None]
    return np.stack([rows[i] for i in kept]), multi_hot([clips[i] for i in kept], labels)


def measure(run: Path, other: Path) -> dict[str, dict[str, float]]:
    """Per rule: promised and delivered micro precision and recall, and the worst firing ratio."""
    scorer = Scorer.load(run)
    labels = scorer.tagger.labels
    _, own = open_dataset(load_config(RunFolder(run).config))
    unheard = load_dataset(other, "auto")
    shared = [t for t in labels if t in unheard.labels]
    cols = [labels.index(t) for t in shared]
    v_probs, v_truth = split_scores(scorer, own.split("valid"), labels)
    t_probs, t_truth = split_scores(scorer, own.split("test"), labels)
    heard = [(c, scorer.tagger.predict(c.path)) for c in unheard.clips]
    heard = [(c, p) for c, p in heard if not p.silent]
    u_probs = np.array([[p.clip[t] for t in shared] for _, p in heard])
    u_truth = multi_hot([c for c, _ in heard], shared).astype(bool)
    out = {}
    for rule, tune in RULES.items():
        cut = tune(v_probs, v_truth, labels)
        promised = precision_recall(v_probs[:, cols], v_truth[:, cols], cut, shared)
        held_out = precision_recall(t_probs[:, cols], t_truth[:, cols], cut, shared)
        delivered = precision_recall(u_probs, u_truth, cut, shared)
        rate = (u_probs >= np.array([cut[t] for t in shared])).mean(0) / np.maximum(u_truth.mean(0), 1 / len(u_truth))
        worst = int(np.argmax(rate))
        out[rule] = {
            "validation precision": promised["precision"],
            "validation recall": promised["recall"],
            "test precision": held_out["precision"],
            "test recall": held_out["recall"],
            "unheard precision": delivered["precision"],
            "unheard recall": delivered["recall"],
            "most over-firing tag: on / true rate": float(rate[worst]),
            "worst tag": shared[worst],
        }
        print(
            f"{run.name} {rule}: validation P {promised['precision']:.3f} R {promised['recall']:.3f}; test P "
            f"{held_out['precision']:.3f} R {held_out['recall']:.3f}; unheard P {delivered['precision']:.3f} "
            f"R {delivered['recall']:.3f}; {shared[worst]} fires {rate[worst]:.2f}x its true rate",
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
