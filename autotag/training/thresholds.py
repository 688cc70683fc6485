"""Per-tag decision thresholds tuned on the validation split, and what they promise.

A single 0.5 cut-off suits few tags of a multi-label tagger: rare tags rarely reach it, so
each tag gets its own threshold from held-out clips. Which one matters on clips unlike the
training set. Each tag's best-F1 threshold (the rule before) sat just under its weakest
validation positive: on the demo set's 30 validation clips, 0.018 for `strings`, which then
fired on nearly every clip of another soundfont; shrunk toward one shared threshold it
still let a tag fire on 2.8 times as many unheard clips as carry it, and precision fell
0.12 short of its promise. The rule now is the precision-recall break-even point: the cut
that tags as many validation clips as carry the tag, so no tag is tuned to fire more often
than it is true. It is averaged with the one break-even cut of all tags together, weighted
by the tag's positives against PRIOR_POSITIVES (shrinkage, as an empirical-Bayes estimate
would): a tag with many positives keeps its own, a tag with few leans on the shared one.
Measured in `benchmarks/thresholds.py` (README, "Decision thresholds").

What the thresholds promise is measured twice: on the validation split they were tuned on
(optimistic: the cut was chosen on those clips) and on the test split, which had no say in
them (`held_out_promise`, written by training): the figure the Tag page shows.
"""

from __future__ import annotations

import numpy as np

#: Validation positives at which a tag's own threshold and the shared one weigh the same.
PRIOR_POSITIVES = 10


def tune_thresholds(probs: np.ndarray, targets: np.ndarray, labels: list[str]) -> dict:
    """Each tag's threshold, and what they promise on the validation split.

    Args:
        probs: (clips, tags) clip-level probabilities.
        targets: (clips, tags) 0/1 ground truth.

    Returns:
        {"method", "thresholds": {tag: t}, "positives": {tag: validation positives},
         "shared": the break-even cut of all tags at once, "untuned": [tags without
         positives, which take the shared one], "promised": micro precision and recall on
         the validation split at these thresholds (`precision_recall`)}.
    """
    y = targets.astype(bool)
    shared = break_even_cut(probs.ravel(), y.ravel()) if y.any() else 0.5
    thresholds, positives, untuned = {}, {}, []
    for j, tag in enumerate(labels):
        n = int(y[:, j].sum())
        positives[tag] = n
        if n == 0:
            thresholds[tag] = shared
            untuned.append(tag)
            continue
        own = break_even_cut(probs[:, j], y[:, j])
        thresholds[tag] = (n * own + PRIOR_POSITIVES * shared) / (n + PRIOR_POSITIVES)
    return {
        "method": f"precision-recall break-even per tag on the validation split, shrunk toward the shared "
        f"break-even cut by {PRIOR_POSITIVES} positives",
        "thresholds": thresholds,
        "positives": positives,
        "shared": shared,
        "untuned": untuned,
        "promised": precision_recall(probs, y, thresholds, labels),
    }


def precision_recall(probs: np.ndarray, targets: np.ndarray, thresholds: dict[str, float], labels: list[str]) -> dict:
    """{"precision", "recall", "clips"}: micro-averaged over all tags at `thresholds`; None where undefined."""
    y = targets.astype(bool)
    on = probs >= np.array([thresholds[t] for t in labels])
    hits = int((on & y).sum())
    return {
        "precision": hits / int(on.sum()) if on.any() else None,
        "recall": hits / int(y.sum()) if y.any() else None,
        "clips": len(probs),
    }


def break_even_cut(p: np.ndarray, y: np.ndarray) -> float:
    """The cut that tags as many of scores `p` as `y` has positives (at least one), where precision
    equals recall; midway between distinct scores, so ties move it to the nearest count that can be cut."""
    sorted_p = np.sort(p)[::-1]
    counts = np.flatnonzero(np.append(sorted_p[:-1] > sorted_p[1:], True)) + 1  # tag the k best: k in counts
    k = int(counts[np.argmin(np.abs(counts - int(y.sum())))])
    below = sorted_p[k] if k < len(p) else 0.0
    return float((sorted_p[k - 1] + below) / 2)
