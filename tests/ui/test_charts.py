"""The dashboard's figures say what they show: an empty chart says so, a lone point is drawn,
thresholds are visible, co-occurrence reads as a share."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from autotag.runs.curves import CurveReader
from autotag.store.run_folder import PER_TAG_AUC
from autotag.ui.charts import (
    cooccurrence_figure,
    curves_figure,
    robustness_tags_figure,
    tag_counts_figure,
    tag_curves_figure,
    taggram_figure,
    top_tags_figure,
)
from tests.runs.test_curves import _write_epochs, _write_run


def test_a_run_without_points_gets_an_empty_chart_that_says_so(tmp_path: Path) -> None:
    empty = CurveReader(tmp_path / "none")
    empty.refresh()
    fig = curves_figure({"run": empty})
    assert not fig.data and "No points yet" in fig.layout.annotations[-1].text
    _write_run(tmp_path / "tb", range(5))
    reader = CurveReader(tmp_path / "tb")
    reader.refresh()
    fig = curves_figure({"run": reader})
    assert {t.name for t in fig.data} >= {"train_loss"}
    assert not any("No points yet" in (a.text or "") for a in fig.layout.annotations)


def test_the_first_train_loss_point_alone_is_drawn_and_named(tmp_path: Path) -> None:
    """Plotly draws no line through one point and hides the legend of a lone trace."""
    _write_run(tmp_path / "tb", range(1), tags=("train_loss",))
    reader = CurveReader(tmp_path / "tb")
    reader.refresh()
    fig = curves_figure({"run": reader})
    (trace,) = fig.data
    assert trace.name == "train_loss" and list(trace.x) == [0] and "markers" in trace.mode
    assert fig.layout.showlegend is True


def test_top_tags_are_coloured_by_their_own_threshold_and_drawn_with_it() -> None:
    fig = top_tags_figure({"piano": 0.3, "drums": 0.6, "rock": 0.1}, {"piano": 0.25, "drums": 0.7}, k=2)
    bars, ticks = fig.data
    assert list(bars.y) == ["piano", "drums"]  # the k most probable, the most probable on top
    assert bars.marker.color[0] != "#b0b0b0" and bars.marker.color[1] == "#b0b0b0"  # piano is on at 0.3 >= 0.25
    assert list(ticks.x) == [0.25, 0.7]
    assert len(top_tags_figure({"piano": 0.3}).data) == 1  # no thresholds: no ticks


def test_co_occurrence_is_the_share_of_the_rows_clips() -> None:
    targets = np.array([[1, 1], [1, 0], [1, 0], [0, 1]])  # piano in 3 clips, drums in 2, together in 1
    share = np.asarray(cooccurrence_figure(["piano", "drums"], targets).data[0].z)
    assert share == pytest.approx(np.array([[1.0, 1 / 3], [0.5, 1.0]]))
    assert cooccurrence_figure(["a"], np.zeros((3, 1))).data[0].z[0][0] == 0.0  # a tag no clip has


def test_tag_counts_stack_the_splits_and_a_taggram_puts_each_chunk_at_its_centre() -> None:
    fig = tag_counts_figure({"train": {"piano": 5, "drums": 9}, "valid": {"piano": 1}})
    assert [t.name for t in fig.data] == ["train", "valid", "test"] and list(fig.data[0].y) == ["piano", "drums"]
    assert list(fig.data[1].x) == [1, 0] and list(fig.data[2].x) == [0, 0]
    gram = taggram_figure(["piano"], np.array([[0.2], [0.9]]), np.array([0.0, 3.0]), 3.0)
    assert list(gram.data[0].x) == [1.5, 4.5] and np.asarray(gram.data[0].z).shape == (1, 2)


def _report(clean: dict[str, float], noisy: dict[str, float]) -> dict:
    def scores(per_tag: dict[str, float]) -> dict:
        return {
            "roc_auc_macro": sum(per_tag.values()) / len(per_tag),
            "per_tag": {t: {"roc_auc": v} for t, v in per_tag.items()},
        }

    return {"clean": scores(clean), "white_noise": {"10 dB SNR": scores(noisy)}}


def test_two_runs_per_tag_rows_line_up_in_one_order() -> None:
    first = _report({"piano": 0.9, "drums": 0.9, "synth": 0.9}, {"piano": 0.5, "drums": 0.85, "synth": 0.8})
    second = _report({"piano": 0.9, "drums": 0.9, "synth": 0.9}, {"piano": 0.88, "drums": 0.6, "synth": 0.89})
    assert list(robustness_tags_figure(first, "white_noise").data[0].y) == ["piano", "synth", "drums"]  # worst first
    order = ["piano", "drums", "synth"]  # the worse of the two, for each tag
    for report in (first, second):
        fig = robustness_tags_figure(report, "white_noise", order=order)
        assert list(fig.data[0].y) == order and "worst of both first" in fig.layout.title.text


def test_curves_go_against_steps_epochs_or_time_and_the_legend_names_runs_as_given(tmp_path: Path) -> None:
    _write_epochs(tmp_path / "a", steps_per_epoch=60, epochs=2)
    _write_epochs(tmp_path / "b", steps_per_epoch=60, epochs=1)
    readers = {name: CurveReader(tmp_path / name) for name in ("a", "b")}
    for reader in readers.values():
        reader.refresh()
    names = {"a": "quick · lr 0.001", "b": "quick · lr 0.01"}
    by_epoch = curves_figure(readers, x="epoch", names=names)
    val = next(t for t in by_epoch.data if t.legendgroup == "a" and t.name == "val_loss")
    assert list(val.x) == [1.0, 2.0] and by_epoch.layout.xaxis.title.text == "epochs trained"
    key = [t.name for t in by_epoch.data if t.showlegend is not False]  # one entry per run, one per metric
    assert key == ["quick · lr 0.001", "quick · lr 0.01", "train_loss", "val_loss"]
    assert val.hovertemplate.startswith("quick · lr 0.001 · val_loss")
    by_time = curves_figure(readers, x="time")
    assert "time since the run's first point (s)" == by_time.layout.xaxis.title.text
    curves = [t for t in by_time.data if t.x[0] is not None]
    assert all(min(t.x) >= 0 for t in curves) and {t.legendgroup for t in curves} == {"a", "b"}
    with pytest.raises(ValueError, match="x axis 'wall'"):
        curves_figure(readers, x="wall")


def test_per_tag_curves_list_the_tags_best_first_and_say_when_there_are_none(tmp_path: Path) -> None:
    _write_run(tmp_path / "tb", range(3), tags=(f"{PER_TAG_AUC}piano", f"{PER_TAG_AUC}drums", "val_loss"))
    reader = CurveReader(tmp_path / "tb")
    reader.refresh()
    fig = tag_curves_figure(reader)
    # _write_run writes 1/(step+1) + i: drums (i=1) ends higher than piano (i=0).
    assert [t.name for t in fig.data] == ["drums (1.333)", "piano (0.333)"]
    empty = tag_curves_figure(CurveReader(tmp_path / "none"))
    assert not empty.data and "No per-tag curves" in empty.layout.annotations[0].text


def test_the_loss_panel_may_be_on_a_log_axis_and_the_auc_panel_never(tmp_path: Path) -> None:
    _write_run(tmp_path / "tb", range(3))
    reader = CurveReader(tmp_path / "tb")
    reader.refresh()
    fig = curves_figure({"run": reader}, log_loss=True)
    assert fig.layout.yaxis.type == "log" and fig.layout.yaxis2.type != "log"
    assert curves_figure({"run": reader}).layout.yaxis.type == "linear"
