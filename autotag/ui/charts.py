"""Plotly figures for the dashboard, built from library data (no streamlit here).

Each function returns a `go.Figure` sized and labelled to be read as is: axis titles
with units, legends naming runs and metrics, a shared hover.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from autotag.runs.curves import CurveReader, Series, downsample, smooth
from autotag.store.run_folder import PER_TAG_AUC

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")
PANELS = (
    ("Loss (binary cross-entropy)", ("train_loss", "val_loss")),
    ("Validation AUC", ("val_roc_auc", "val_pr_auc")),
)
_DASH = {"train_loss": "dot", "val_loss": "solid", "val_roc_auc": "solid", "val_pr_auc": "dash"}


#: The x axes a user may plot curves against, as the chart's control names them.
X_AXES = ("step", "epoch", "time")
#: Seconds per unit of a time axis, by the longest run shown: seconds, minutes or hours.
_TIME_UNITS = ((180.0, 1.0, "s"), (3 * 3600.0, 60.0, "min"), (float("inf"), 3600.0, "h"))


def _time_unit(readers: Mapping[str, CurveReader]) -> tuple[float, str]:
    """The unit that keeps a time axis readable for the longest of `readers`."""
    spans = [r.ended() - start for r in readers.values() if (start := r.started()) is not None]
    longest = max(spans, default=0.0)
    return next((size, unit) for limit, size, unit in _TIME_UNITS if longest < limit)


def _x_values(reader: CurveReader, series: Series, x: str, seconds: float) -> list[float]:
    """A series' points on the chosen axis: steps, epochs trained, or time since the run's first point."""
    if x == "epoch":
        return reader.epochs_at(series.steps)
    if x == "time":
        start = reader.started() or 0.0
        return [(w - start) / seconds for w in series.walls]
    return list(series.steps)


def _x_title(x: str, unit: str) -> str:
    return {"step": "training step", "epoch": "epochs trained", "time": f"time since the run's first point ({unit})"}[x]


def curves_figure(
    readers: Mapping[str, CurveReader],
    smoothing: float = 0.0,
    max_points: int = 1000,
    log_loss: bool = False,
    x: str = "step",
    names: Mapping[str, str] | None = None,
) -> go.Figure:
    """Loss and AUC curves of one or more runs against the training step, epoch or time.

    Args:
        readers: Run -> its refreshed reader; each run gets one colour.
        smoothing: EMA weight in [0, 1) applied to train_loss (noisy per-step values).
        log_loss: The loss panel on a log axis (a loss that falls by orders of magnitude).
        x: One of `X_AXES`: time is since each run's first point, so runs started at
            different hours line up.
        names: Run -> what the legend calls it (its name and how its config differs);
            the run's key where absent.
    """
    if x not in X_AXES:
        raise ValueError(f"x axis {x!r}: choose one of {', '.join(X_AXES)}")
    fig = make_subplots(rows=1, cols=2, subplot_titles=[title for title, _ in PANELS], horizontal_spacing=0.08)
    single = len(readers) == 1
    seconds, unit = _time_unit(readers) if x == "time" else (1.0, "")
    for i, (run, reader) in enumerate(readers.items()):
        label = (names or {}).get(run, run)
        for col, (_, tags) in enumerate(PANELS, start=1):
            for j, tag in enumerate(tags):
                # One run: a colour per metric. Several: a colour per run, a dash per metric.
                color = PALETTE[2 * (col - 1) + j] if single else PALETTE[i % len(PALETTE)]
                series = reader.get(tag)
                if not series.steps:
                    continue
                values = smooth(series.values, smoothing) if tag == "train_loss" else series.values
                xs, values = downsample(_x_values(reader, series, x, seconds), values, max_points)
                fig.add_trace(
                    go.Scatter(
                        x=xs,
                        y=values,
                        name=tag,
                        # A line of one point is invisible: the first train_loss gets a marker.
                        mode="lines+markers" if tag.startswith("val") or len(xs) == 1 else "lines",
                        line={"color": color, "dash": _DASH.get(tag, "solid"), "width": 2},
                        marker={"size": 5},
                        legendgroup=run,
                        showlegend=single,  # several runs: the key below names them
                        hovertemplate=None if single else f"{label} · {tag}: %{{y:.4g}}<extra></extra>",
                    ),
                    row=1,
                    col=col,
                )
    if not single:
        _key(fig, [(run, (names or {}).get(run, run)) for run in readers])
    if not fig.data:  # in the loss panel, where the first point will be
        _say_empty(fig, "No points yet:<br>the first train_loss appears<br>after the first training step")
    fig.update_xaxes(title_text=_x_title(x, unit))
    fig.update_yaxes(title_text="loss", row=1, col=1, type="log" if log_loss else "linear")
    fig.update_yaxes(title_text="macro AUC", row=1, col=2)
    fig.update_layout(
        height=400,
        margin={"l": 60, "r": 20, "t": 64, "b": 50},  # the titles clear plotly's toolbar
        hovermode="x unified",
        showlegend=True,  # plotly hides the legend of a lone trace: the first curve would be unnamed
        legend={"orientation": "h", "y": -0.25},
    )
    return fig


def _say_empty(fig: go.Figure, text: str) -> None:
    """Why a chart has no line yet, in the middle of its (first) panel."""
    fig.add_annotation(text=text, xref="x domain", yref="y domain", x=0.5, y=0.5, showarrow=False, font={"size": 14})


def _key(fig: go.Figure, runs: list[tuple[str, str]]) -> None:
    """A legend of several runs: one entry per run in its colour (a click hides all its
    curves), one per metric in its dash, rather than every run x metric pair."""
    for i, (run, label) in enumerate(runs):
        fig.add_trace(
            go.Scatter(x=[None], y=[None], mode="lines", name=label, legendgroup=run, line={"color": PALETTE[i % 8]})
        )
    shown = {t.name for t in fig.data if t.x and t.x[0] is not None}
    for tag in (t for _, tags in PANELS for t in tags if t in shown):
        fig.add_trace(
            go.Scatter(
                x=[None],
                y=[None],
                mode="lines",
                name=tag,
                legendgroup=f"metric {tag}",
                line={"color": "#666", "dash": _DASH.get(tag, "solid")},
            )
        )


def tag_curves_figure(reader: CurveReader, x: str = "step") -> go.Figure:
    """Each tag's validation ROC-AUC over one run's training: which tags learn, which stall.

    The legend lists the tags best last value first; a click on a tag hides it, a double
    click shows it alone.
    """
    curves = {
        tag.removeprefix(PER_TAG_AUC): series
        for tag, series in reader.series.items()
        if tag.startswith(PER_TAG_AUC) and series.steps
    }
    seconds, unit = _time_unit({"run": reader}) if x == "time" else (1.0, "")
    fig = go.Figure()
    for tag, series in sorted(curves.items(), key=lambda kv: (-kv[1].values[-1], kv[0])):
        fig.add_trace(
            go.Scatter(
                x=_x_values(reader, series, x, seconds),
                y=series.values,
                name=f"{tag} ({series.values[-1]:.3f})",
                mode="lines+markers",
                marker={"size": 4},
                hovertemplate=f"{tag}: %{{y:.3f}}<extra></extra>",
            )
        )
    if not curves:
        _say_empty(
            fig,
            "No per-tag curves: they appear after the first validation<br>"
            "(runs trained before autotag logged them have none)",
        )
    fig.update_layout(
        title={"text": "Validation ROC-AUC of each tag (last value in the legend)", "font": {"size": 14}},
        height=420,
        xaxis_title=_x_title(x, unit),
        yaxis={"title": "ROC-AUC", "range": [0.0, 1.02]},
        margin={"l": 60, "r": 20, "t": 50, "b": 50},
        hovermode="x unified" if len(curves) <= 12 else "closest",
        showlegend=True,
    )
    return fig


def tag_counts_figure(tag_counts: Mapping[str, Mapping[str, int]]) -> go.Figure:
    """Positives per tag, stacked by split, most frequent (in train) on top."""
    tags = sorted(tag_counts.get("train", {}), key=lambda t: tag_counts["train"][t])
    fig = go.Figure()
    for split, color in zip(("train", "valid", "test"), PALETTE):
        counts = tag_counts.get(split, {})
        fig.add_trace(
            go.Bar(y=tags, x=[counts.get(t, 0) for t in tags], name=split, orientation="h", marker_color=color)
        )
    fig.update_layout(
        barmode="stack",
        height=max(250, 22 * len(tags) + 80),
        xaxis_title="clips with the tag",
        margin={"l": 10, "r": 10, "t": 50, "b": 40},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0, "traceorder": "normal"},
    )
    return fig


def cooccurrence_figure(labels: Sequence[str], targets: np.ndarray) -> go.Figure:
    """How often tag B is present when tag A is (row A, column B), as a share of A's clips.

    Args:
        targets: (clips, tags) 0/1 matrix in `labels` order.
    """
    counts = targets.T.astype(float) @ targets.astype(float)
    share = counts / np.maximum(np.diag(counts)[:, None], 1)
    fig = go.Figure(
        go.Heatmap(
            z=share,
            x=list(labels),
            y=list(labels),
            colorscale="Blues",
            zmin=0,
            zmax=1,
            colorbar={"title": "P(col | row)"},
            hovertemplate="%{y} → %{x}: %{z:.0%}<extra></extra>",
        )
    )
    side = max(320, 26 * len(labels) + 140)
    fig.update_layout(height=side, margin={"l": 10, "r": 10, "t": 30, "b": 10}, yaxis_autorange="reversed")
    return fig


def spectrogram_figure(mels: np.ndarray, seconds_per_frame: float) -> go.Figure:
    """Log-mel spectrogram (n_mels, frames) in dB against time in seconds."""
    times = np.arange(mels.shape[1]) * seconds_per_frame
    fig = go.Figure(
        go.Heatmap(
            z=mels,
            x=times,
            colorscale="Magma",
            colorbar={"title": "dB"},
            hovertemplate="t %{x:.2f} s, mel bin %{y}: %{z:.0f} dB<extra></extra>",
        )
    )
    fig.update_layout(
        height=280, xaxis_title="time (s)", yaxis_title="mel bin", margin={"l": 60, "r": 10, "t": 20, "b": 40}
    )
    return fig


def top_tags_figure(
    scores: Mapping[str, float], thresholds: Mapping[str, float] | None = None, k: int = 10
) -> go.Figure:
    """The `k` most probable tags as bars; tags at or over their threshold are coloured, and
    each tag's threshold is a black tick on its bar, so a user sees why a low bar is "on"."""
    top = sorted(scores.items(), key=lambda kv: kv[1])[-k:]
    colors = [PALETTE[0] if thresholds is None or p >= thresholds.get(t, 0.5) else "#b0b0b0" for t, p in top]
    fig = go.Figure(
        go.Bar(
            x=[p for _, p in top],
            y=[t for t, _ in top],
            orientation="h",
            marker_color=colors,
            text=[f"{p:.2f}" for _, p in top],
            textposition="outside",
            name="probability",
            hovertemplate="%{y}: %{x:.3f}<extra></extra>",
        )
    )
    if thresholds is not None:
        cuts = [thresholds.get(t, 0.5) for t, _ in top]
        fig.add_trace(
            go.Scatter(
                x=cuts,
                y=[t for t, _ in top],
                mode="markers",
                marker={"symbol": "line-ns-open", "size": 22, "color": "#222", "line": {"width": 3, "color": "#222"}},
                name="threshold",
                hovertemplate="%{y}: threshold %{x:.3f}<extra></extra>",
            )
        )
    fig.update_layout(
        height=max(220, 28 * len(top) + 60),
        xaxis={"range": [0, 1.1], "title": "probability"},
        margin={"l": 10, "r": 10, "t": 20, "b": 40},
        showlegend=False,
    )
    return fig


def taggram_figure(
    labels: Sequence[str], taggram: np.ndarray, chunk_starts: np.ndarray, chunk_seconds: float
) -> go.Figure:
    """Tags x time heatmap of per-chunk probabilities (musicnn's taggram)."""
    centers = np.asarray(chunk_starts) + chunk_seconds / 2
    fig = go.Figure(
        go.Heatmap(
            z=np.asarray(taggram).T,
            x=centers,
            y=list(labels),
            colorscale="Viridis",
            zmin=0,
            zmax=1,
            colorbar={"title": "prob."},
            hovertemplate="%{y} at %{x:.1f} s: %{z:.2f}<extra></extra>",
        )
    )
    fig.update_layout(
        height=max(260, 18 * len(labels) + 100),
        xaxis_title="time (s, chunk centre)",
        margin={"l": 10, "r": 10, "t": 20, "b": 40},
    )
    return fig


def _delta_heatmap(
    z: list[list[float | None]],
    text: list[list[str]],
    rows: Sequence[str],
    cols: Sequence[str],
    span: float,
    title: str,
    x_title: str,
) -> go.Figure:
    """A heatmap of changes against clean: red where the score fell, blue where it rose, white at none."""
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=list(cols),
            y=list(rows),
            text=text,
            texttemplate="%{text}",
            colorscale="RdBu",
            zmid=0,
            zmin=-span,
            zmax=span,
            colorbar={"title": "Δ ROC-AUC"},
            hovertemplate="%{y}, %{text}<extra></extra>",
            xgap=2,
            ygap=2,
        )
    )
    fig.update_layout(
        title={"text": title, "font": {"size": 14}},
        height=max(260, 44 * len(rows) + 110),
        margin={"l": 10, "r": 10, "t": 50, "b": 40},
        xaxis={"type": "category", "title": x_title},
        yaxis={"type": "category", "autorange": "reversed"},
    )
    return fig


def robustness_span(*reports: Mapping) -> float:
    """One colour range for the reports shown together (side by side compare alike)."""
    deltas = [
        abs(row["roc_auc_macro"] - report["clean"]["roc_auc_macro"])
        for report in reports
        for name, rows in report.items()
        if name != "clean"
        for row in rows.values()
        if row["roc_auc_macro"] is not None and report["clean"]["roc_auc_macro"] is not None
    ]
    return max([0.05, *[d for d in deltas if np.isfinite(d)]])


def robustness_figure(report: Mapping, title: str = "", span: float | None = None) -> go.Figure:
    """Perturbation x strength (mildest left) -> change in macro ROC-AUC against the clean audio."""
    clean = report["clean"]["roc_auc_macro"]
    names = [n for n in report if n != "clean"]
    width = max(len(report[n]) for n in names) if names else 0
    z: list[list[float | None]] = []
    text: list[list[str]] = []
    for name in names:
        rows = list(report[name].items())
        z.append([rows[i][1]["roc_auc_macro"] - clean if i < len(rows) else None for i in range(width)])
        text.append([f"{rows[i][0]}<br>{z[-1][i]:+.3f}" if i < len(rows) else "" for i in range(width)])
    cols = [f"{i + 1}" for i in range(width)]
    heading = title or f"Change in macro ROC-AUC against clean audio ({clean:.3f})"
    return _delta_heatmap(z, text, names, cols, span or robustness_span(report), heading, "strength, mildest first")


def worst_drops(report: Mapping, perturbation: str) -> dict[str, float]:
    """Each scored tag's largest fall in ROC-AUC under `perturbation` (NaN where never scored)."""
    clean = report["clean"]["per_tag"]
    return {
        tag: float(np.nanmin([_tag_delta(report, perturbation, s, tag) for s in report[perturbation]]))
        for tag, v in clean.items()
        if v["roc_auc"] is not None
    }


def _tag_delta(report: Mapping, perturbation: str, strength: str, tag: str) -> float:
    value = report[perturbation][strength]["per_tag"][tag]["roc_auc"]
    return float("nan") if value is None else value - report["clean"]["per_tag"][tag]["roc_auc"]


def robustness_tags_figure(
    report: Mapping, perturbation: str, span: float | None = None, order: Sequence[str] | None = None
) -> go.Figure:
    """Tag x strength -> change in the tag's ROC-AUC: which tags break first (worst on top).

    Args:
        order: The rows' tags in this order (of them, those the report scored): two runs
            side by side share one order, or their rows would not line up.
    """
    strengths = list(report[perturbation])
    drops = worst_drops(report, perturbation)
    tags = [t for t in order if t in drops] if order is not None else sorted(drops, key=drops.__getitem__)
    z = [[_tag_delta(report, perturbation, s, t) for s in strengths] for t in tags]
    text = [[f"{v:+.3f}" for v in row] for row in z]
    deltas = [abs(v) for row in z for v in row if np.isfinite(v)]
    first = "worst first" if order is None else "worst of both first"
    title = f"{perturbation}: change in each tag's ROC-AUC ({first})"
    return _delta_heatmap(z, text, tags, strengths, span or max([0.05, *deltas]), title, "strength")
