"""Predictions as the CLI prints them and the Tag page offers them: JSON, CSV, or the tags decided."""

from __future__ import annotations

import csv
import io
import json

import numpy as np

from autotag.serving.render import render_predictions
from autotag.serving.tagger import Prediction

LABELS = ["drums", "piano"]


def _prediction(clip: dict[str, float], silent: bool = False) -> Prediction:
    taggram = np.array([[clip["drums"], clip["piano"]], [0.1, 0.2]])
    return Prediction(LABELS, clip, taggram, np.array([0.0, 3.0]), 6.0, silent)


RESULTS = {
    "a.wav": _prediction({"drums": 0.9, "piano": 0.1234567}),
    "b,c.wav": _prediction({"drums": 0.2, "piano": 0.7}),
}


def test_json_holds_every_tags_probability_and_with_taggram_each_chunk() -> None:
    assert json.loads(render_predictions(RESULTS, "json")) == {
        "a.wav": {"drums": 0.9, "piano": 0.123457},
        "b,c.wav": {"drums": 0.2, "piano": 0.7},
    }
    full = json.loads(render_predictions(RESULTS, "json", taggram=True))["a.wav"]
    assert full["taggram"] == {"labels": LABELS, "chunk_starts": [0.0, 3.0], "scores": [[0.9, 0.123457], [0.1, 0.2]]}


def test_csv_has_a_row_per_file_or_per_chunk_and_quotes_a_comma_in_a_name() -> None:
    rows = list(csv.reader(io.StringIO(render_predictions(RESULTS, "csv"))))
    assert rows == [["file", "drums", "piano"], ["a.wav", "0.900000", "0.123457"], ["b,c.wav", "0.200000", "0.700000"]]
    chunks = list(csv.reader(io.StringIO(render_predictions(RESULTS, "csv", taggram=True))))
    assert chunks[0] == ["file", "start", "drums", "piano"] and chunks[2] == ["a.wav", "3.000", "0.100000", "0.200000"]
    assert render_predictions({}, "csv") == "file"


def test_tags_are_those_at_their_thresholds_most_probable_first_and_none_for_silence() -> None:
    thresholds = {"drums": 0.5, "piano": 0.1}
    assert json.loads(render_predictions(RESULTS, "tags", thresholds=thresholds)) == {
        "a.wav": ["drums", "piano"],
        "b,c.wav": ["piano"],
    }
    silent = {"quiet.wav": _prediction({"drums": 0.0, "piano": 0.0}, silent=True)}
    assert json.loads(render_predictions(silent, "tags", thresholds={"drums": 0.0})) == {"quiet.wav": []}
