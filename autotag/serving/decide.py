"""Which tags a clip gets: its probabilities against per-tag thresholds.

A model gives every tag a probability; a user wants a list of tags. The Tag page and
`tag --format tags` decide the same way: a tag is on when its probability reaches its
threshold, which is the one cut-off the user chose, else the one tuned for the tag on the
validation split (`training.thresholds`, written by training as thresholds.json), else 0.5.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from autotag.runs.folder import RunFolder

if TYPE_CHECKING:  # torch-free: the CLI imports this module at start-up
    from autotag.serving.tagger import Prediction

#: The cut-off of a tag that has no tuned threshold.
DEFAULT_THRESHOLD = 0.5


def tuned_thresholds(run_dir: str | Path) -> dict[str, float] | None:
    """The run's per-tag thresholds tuned on its validation split, or None before it has them.

    thresholds.json is anyone's to edit: a value that is no probability (a string, NaN, 7)
    is left out, so its tag falls back to DEFAULT_THRESHOLD instead of failing the tagging.
    """
    run = RunFolder.at(run_dir)
    data = run.read_json(run.thresholds)
    tuned = data.get("thresholds") if isinstance(data, dict) else None
    if not isinstance(tuned, dict):
        return None
    return {str(t): float(v) for t, v in tuned.items() if _probability(v)}


def threshold_positives(run_dir: str | Path) -> dict[str, int]:
    """How many validation positives each tuned threshold rests on ({} for a run from before
    they were recorded); a count that is no count is left out."""
    run = RunFolder.at(run_dir)
    data = run.read_json(run.thresholds)
    counts = data.get("positives") if isinstance(data, dict) else None
    if not isinstance(counts, dict):
        return {}
    return {str(t): n for t, n in counts.items() if isinstance(n, int) and not isinstance(n, bool) and n >= 0}


def _probability(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 <= value <= 1.0


def decision_thresholds(
    labels: list[str], tuned: dict[str, float] | None = None, cut: float | None = None
) -> dict[str, float]:
    """Each tag's threshold: `cut` for every tag when given, else the tuned ones (0.5 where missing)."""
    if cut is not None:
        return dict.fromkeys(labels, float(cut))
    tuned = tuned or {}
    return {t: tuned.get(t, DEFAULT_THRESHOLD) for t in labels}


def tags_above(prediction: Prediction, thresholds: dict[str, float]) -> list[str]:
    """The tags whose clip probability reaches their threshold, most probable first; none for silence."""
    if prediction.silent:
        return []
    return [t for t, p in prediction.top(len(prediction.labels)) if p >= thresholds.get(t, DEFAULT_THRESHOLD)]
