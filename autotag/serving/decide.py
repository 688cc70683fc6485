"""Which tags a clip gets: its probabilities against per-tag thresholds.

A model gives every tag a probability; a user wants a list of tags. The Tag page and
`tag --format tags` decide the same way: a tag is on when its probability reaches its
threshold, which is the one cut-off the user chose, else the one tuned for the tag on the
validation split (`training.thresholds`, written by training as thresholds.json), else 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from autotag.store.run_folder import RunFolder

if TYPE_CHECKING:  # torch-free: the CLI imports this module at start-up
    from autotag.serving.tagger import Prediction

#: The cut-off of a tag that has no tuned threshold.
DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True)
class Tuning:
    """What training wrote in thresholds.json, as far as it is sound.

    thresholds.json is anyone's to edit: a value that is no probability (a string, NaN, 7)
    or no count is left out, so its tag falls back to DEFAULT_THRESHOLD instead of failing
    the tagging, and a damaged promise is not shown.
    """

    thresholds: dict[str, float]
    #: Validation positives each threshold rests on ({} for a run from before they were recorded).
    positives: dict[str, int]
    #: Micro precision and recall on the test split at these thresholds, and its clips (None
    #: for a run without test clips or from before it was measured).
    held_out: tuple[float, float, int] | None


def read_tuning(run_dir: str | Path) -> Tuning | None:
    """The run's per-tag thresholds tuned on its validation split, or None before it has them."""
    run = RunFolder.at(run_dir)
    data = run.read_json(run.thresholds)
    tuned = data.get("thresholds") if isinstance(data, dict) else None
    if not isinstance(tuned, dict):
        return None
    counts = data.get("positives")
    promise = data.get("held_out")
    held_out = None
    if isinstance(promise, dict) and all(_probability(promise.get(k)) for k in ("precision", "recall")):
        clips = promise.get("clips")
        if _count(clips):
            held_out = (float(promise["precision"]), float(promise["recall"]), clips)
    return Tuning(
        thresholds={str(t): float(v) for t, v in tuned.items() if _probability(v)},
        positives={str(t): n for t, n in counts.items() if _count(n)} if isinstance(counts, dict) else {},
        held_out=held_out,
    )


def tuned_thresholds(run_dir: str | Path) -> dict[str, float] | None:
    """The run's tuned per-tag thresholds (`read_tuning`), or None before it has them."""
    tuning = read_tuning(run_dir)
    return tuning.thresholds if tuning else None


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


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
