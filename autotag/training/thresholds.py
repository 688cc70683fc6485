"""Per-tag decision thresholds tuned on the validation split (best F1 per tag).

A single 0.5 cut-off suits few tags of a multi-label tagger: rare tags rarely reach it.
Tuning each tag's threshold on held-out clips is standard practice in the tagging
literature; the Tag page offers these as its default.
"""

from __future__ import annotations

import numpy as np


def best_f1_thresholds(probs: np.ndarray, targets: np.ndarray, labels: list[str]) -> dict:
    """The threshold that maximises F1 for each tag.

    Args:
        probs: (clips, tags) clip-level probabilities.
        targets: (clips, tags) 0/1 ground truth.

    Returns:
        {"thresholds": {tag: t}, "f1": {tag: best F1}, "untuned": [tags without positives]};
        untuned tags keep 0.5.
    """
    thresholds, f1s, untuned = {}, {}, []
    for j, tag in enumerate(labels):
        p, y = probs[:, j], targets[:, j].astype(bool)
        if not y.any():
            thresholds[tag], f1s[tag] = 0.5, None
            untuned.append(tag)
            continue
        order = np.argsort(-p, kind="stable")
        sorted_p, hits = p[order], y[order]
        tp = np.cumsum(hits)
        k = np.arange(1, len(p) + 1)
        f1 = 2 * tp / (k + y.sum())  # 2PR/(P+R) with P = tp/k, R = tp/positives
        # Only cut between distinct scores: predicting "tag" for the first k clips.
        valid = np.append(sorted_p[:-1] > sorted_p[1:], True)
        best = int(np.argmax(np.where(valid, f1, -1)))
        below = sorted_p[best + 1] if best + 1 < len(p) else 0.0
        thresholds[tag] = float((sorted_p[best] + below) / 2)
        f1s[tag] = float(f1[best])
    return {
        "method": "best F1 per tag on the validation split",
        "thresholds": thresholds,
        "f1": f1s,
        "untuned": untuned,
    }
