"""Per-tag decision thresholds tuned on the validation split: best F1, shrunk toward a shared one.

A single 0.5 cut-off suits few tags of a multi-label tagger: rare tags rarely reach it.
Tuning each tag's threshold on held-out clips is standard practice in the tagging
literature, and the Tag page offers these as its default. But a tag with a handful of
validation positives gets whatever threshold sits just under its weakest positive: on the
demo set's 30 validation clips, 0.018 for `strings`, which then fired on nearly every clip
the model had never heard. So each tag's own best-F1 threshold is averaged with the one
threshold that is best for all tags together, weighted by the tag's positives against
PRIOR_POSITIVES (shrinkage, as an empirical-Bayes estimate would): a tag with many
positives keeps its own, a tag with few leans on the shared one.
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
         "f1": {tag: the best F1 of its own threshold, None without positives}, "shared": the
         threshold best for all tags at once, "untuned": [tags without positives, which take
         the shared one], "promised": {"precision", "recall"} micro-averaged over the split at
         these thresholds (None where undefined)}.
    """
    y = targets.astype(bool)
    shared, _ = best_f1_cut(probs.ravel(), y.ravel()) if y.any() else (0.5, 0.0)
    thresholds, positives, f1s, untuned = {}, {}, {}, []
    for j, tag in enumerate(labels):
        n = int(y[:, j].sum())
        positives[tag] = n
        if n == 0:
            thresholds[tag], f1s[tag] = shared, None
            untuned.append(tag)
            continue
        own, f1s[tag] = best_f1_cut(probs[:, j], y[:, j])
        thresholds[tag] = (n * own + PRIOR_POSITIVES * shared) / (n + PRIOR_POSITIVES)
    cut = np.array([thresholds[t] for t in labels])
    on = probs >= cut
    tp = int((on & y).sum())
    return {
        "method": f"best F1 per tag on the validation split, shrunk toward the best shared threshold "
        f"by {PRIOR_POSITIVES} positives",
        "thresholds": thresholds,
        "positives": positives,
        "f1": f1s,
        "shared": shared,
        "untuned": untuned,
        "promised": {
            "precision": tp / int(on.sum()) if on.any() else None,
            "recall": tp / int(y.sum()) if y.any() else None,
        },
    }


def best_f1_cut(p: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """The threshold that maximises F1 of scores `p` against 0/1 `y` (which has a positive), and that F1.

    Cuts only between distinct scores, midway: predicting the label for the k best-scored items.
    """
    order = np.argsort(-p, kind="stable")
    sorted_p, hits = p[order], y[order].astype(bool)
    tp = np.cumsum(hits)
    k = np.arange(1, len(p) + 1)
    f1 = 2 * tp / (k + hits.sum())  # 2PR/(P+R) with P = tp/k, R = tp/positives
    valid = np.append(sorted_p[:-1] > sorted_p[1:], True)
    best = int(np.argmax(np.where(valid, f1, -1)))
    below = sorted_p[best + 1] if best + 1 < len(p) else 0.0
    return float((sorted_p[best] + below) / 2), float(f1[best])
