"""The event-file reader under growth, truncation and corruption: it never raises, counts only grow."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest
from torch.utils.tensorboard import SummaryWriter

from autotag.runs.curves import CurveReader, downsample, smooth


def _write_run(folder: Path, steps: range, tags: tuple[str, ...] = ("train_loss", "val_loss")) -> Path:
    writer = SummaryWriter(str(folder))
    for step in steps:
        for i, tag in enumerate(tags):
            writer.add_scalar(tag, 1.0 / (step + 1) + i, step)
    writer.close()
    return next(folder.glob("events.out.tfevents.*"))


def _count(reader: CurveReader) -> int:
    return sum(len(s.steps) for s in reader.series.values())


def test_refresh_reads_only_what_was_appended(tmp_path: Path) -> None:
    src = _write_run(tmp_path / "src", range(100))
    data = src.read_bytes()
    (tmp_path / "live").mkdir()
    live = tmp_path / "live" / src.name
    reader = CurveReader(tmp_path / "live")
    counts = []
    for cut in range(0, len(data) + 1, 97):  # appended in odd-sized pieces, records split anywhere
        live.write_bytes(data[:cut])
        reader.refresh()
        counts.append(_count(reader))
    live.write_bytes(data)
    reader.refresh()
    assert counts == sorted(counts), "a refresh lost points"
    assert _count(reader) == 200 and reader.get("val_loss").steps == list(range(100))
    assert reader.refresh() == 0 and not reader.problems and reader.pending_bytes() == 0


@pytest.mark.parametrize("seed", range(20))
def test_truncated_and_flipped_files_never_raise(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    src = _write_run(tmp_path / "src", range(60))
    data = bytearray(src.read_bytes())
    (tmp_path / "t").mkdir()
    cut = rng.randrange(len(data))
    (tmp_path / "t" / src.name).write_bytes(data[:cut])
    truncated = CurveReader(tmp_path / "t")
    truncated.refresh()
    assert _count(truncated) <= 120 and not truncated.problems

    flip_at = rng.randrange(60, len(data))  # past the file-version record
    data[flip_at] ^= 0xFF
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / src.name).write_bytes(bytes(data))
    flipped = CurveReader(tmp_path / "f")
    flipped.refresh()
    assert flipped.problems, "a damaged record went unnoticed"
    assert 115 <= _count(flipped) < 120  # one record lost, or a few when a header broke


def test_a_shrunk_file_keeps_its_points_and_is_flagged(tmp_path: Path) -> None:
    src = _write_run(tmp_path / "src", range(30))
    reader = CurveReader(tmp_path / "src")
    reader.refresh()
    src.write_bytes(src.read_bytes()[:100])
    reader.refresh()
    assert _count(reader) == 60 and "shrank" in reader.problems[0]


def test_resumed_run_plots_every_step_once(tmp_path: Path) -> None:
    first = _write_run(tmp_path / "a", range(0, 50))
    second = _write_run(tmp_path / "b", range(30, 80))
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(first, run / "events.out.tfevents.1000.host.1.0")
    shutil.copy(second, run / "events.out.tfevents.2000.host.2.0")  # written after the resume
    reader = CurveReader(run)
    reader.refresh()
    assert reader.get("train_loss").steps == list(range(80))


def test_smoothing_and_downsampling() -> None:
    assert smooth([1.0, 1.0, 1.0], 0.9) == pytest.approx([1.0, 1.0, 1.0])  # debiased: no ramp from 0
    assert smooth([1.0, 3.0], 0.0) == [1.0, 3.0]
    steps, values = downsample(list(range(5000)), [float(v) for v in range(5000)], 1000)
    assert len(steps) <= 1000 and steps[0] == 0 and steps[-1] == 4999 and values[-1] == 4999.0


def test_a_run_without_points_gets_an_empty_chart_that_says_so(tmp_path: Path) -> None:
    from autotag.charts import curves_figure

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
    from autotag.charts import curves_figure

    _write_run(tmp_path / "tb", range(1), tags=("train_loss",))
    reader = CurveReader(tmp_path / "tb")
    reader.refresh()
    fig = curves_figure({"run": reader})
    (trace,) = fig.data
    assert trace.name == "train_loss" and list(trace.x) == [0] and "markers" in trace.mode
    assert fig.layout.showlegend is True
