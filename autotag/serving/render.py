"""Text renderings of predictions for the CLI and downloads: scores as JSON or CSV, or decided tags."""

from __future__ import annotations

import csv
import io
import json
from typing import TYPE_CHECKING

from autotag.serving.decide import tags_above

if TYPE_CHECKING:  # the CLI imports FORMATS at start-up, which stays torch-free
    from autotag.serving.tagger import Prediction

#: What `render_predictions` writes: every tag's probability (json, csv), or the tags decided.
FORMATS = ("json", "csv", "tags")


def predictions_to_dict(results: dict[str, Prediction], taggram: bool) -> dict:
    """{file: {tag: prob}}, or with `taggram` {file: {"tags", "taggram": {...}}}."""
    out: dict = {}
    for name, pred in results.items():
        scores = {t: round(p, 6) for t, p in pred.clip.items()}
        if not taggram:
            out[name] = scores
            continue
        out[name] = {
            "tags": scores,
            "taggram": {
                "labels": pred.labels,
                "chunk_starts": [round(float(s), 4) for s in pred.chunk_starts],
                "scores": [[round(float(p), 6) for p in row] for row in pred.taggram],
            },
        }
    return out


def predictions_to_csv(results: dict[str, Prediction], taggram: bool) -> str:
    """One row per file (`file,tag...`) or, with `taggram`, per chunk (`file,start,tag...`)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    labels = next(iter(results.values())).labels if results else []
    writer.writerow(["file", *(["start"] if taggram else []), *labels])
    for name, pred in results.items():
        if taggram:
            for start, row in zip(pred.chunk_starts, pred.taggram):
                writer.writerow([name, f"{start:.3f}", *(f"{p:.6f}" for p in row)])
        else:
            writer.writerow([name, *(f"{pred.clip[t]:.6f}" for t in labels)])
    return buf.getvalue().rstrip("\n")


def render_predictions(
    results: dict[str, Prediction], fmt: str, taggram: bool = False, thresholds: dict[str, float] | None = None
) -> str:
    """`results` in one of `FORMATS`; "tags" is {file: [tags at or above `thresholds`]} as JSON."""
    if fmt == "csv":
        return predictions_to_csv(results, taggram)
    if fmt == "tags":
        return json.dumps({name: tags_above(pred, thresholds or {}) for name, pred in results.items()}, indent=2)
    return json.dumps(predictions_to_dict(results, taggram), indent=2)
