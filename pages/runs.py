"""Runs: every run with its progress, live curves from TensorBoard files, stop/resume/delete, robustness."""

from __future__ import annotations

import runpy
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd
import streamlit as st

from autotag.access import AccessDenied, allowed, read_log
from autotag.config import QUICK_DEMO, make_config
from autotag.data.demo import default_demo_dir
from autotag.errors import AutotagError
from autotag.runs import manager
from autotag.runs.curves import curves_csv
from autotag.runs.table import (
    FACETS,
    SORTABLE,
    RunFilter,
    config_differences,
    facet_values,
    legend_names,
    page_of,
    select_rows,
)
from autotag.store.checkpoints import has_checkpoint
from autotag.store.files import text_head
from autotag.store.job import RunState
from autotag.store.run_folder import RunFolder, default_runs_dir
from autotag.ui.auth import acting
from autotag.ui.charts import X_AXES
from autotag.ui.live import Snapshot, live_runs, refresh_interval
from autotag.ui.robustness import robustness_section
from autotag.ui.ticker import refresh_clock

if "_app_nav" not in st.session_state:  # run alone by Streamlit's older pages/ layout: see app.py
    runpy.run_path(str(Path(__file__).parents[1] / "app.py"), run_name="__main__")
    st.stop()
actor = acting()  # who acts; a page run alone (see app.py) by a session with nobody logged in stops


def _quick_demo() -> None:
    config = make_config(data=str(default_demo_dir()), **QUICK_DEMO)
    try:
        run = manager.launch(config, name="quick-demo", actor=acting())  # who acts now, not when drawn
    except AccessDenied as exc:
        st.session_state["runs_refused"] = str(exc)
        return
    st.session_state["runs_selected"] = [run.name]


def _audit_log() -> None:
    """The audit log, for admins (a dashboard without login shows none: nothing changes on a laptop)."""
    if actor.role != "admin":
        return
    with st.expander("Audit log (newest first)"):
        entries = read_log(runs_dir)
        if not entries:
            st.caption("Nothing recorded yet: launches, stops, resumes, deletes, exports, sweeps and logins go here.")
            return
        table = pd.DataFrame(entries)
        table["time"] = pd.to_datetime(table["time"], unit="s").dt.strftime("%Y-%m-%d %H:%M:%S")
        st.dataframe(table, hide_index=True)


st.title("Runs")
runs_dir = default_runs_dir()
if refused := st.session_state.pop("runs_refused", None):
    st.error(refused)
manager.schedule(runs_dir)  # start queued runs whose turn has come
shared = live_runs(runs_dir)  # one read of the runs folder and event files for every viewer
runs = list(shared.snapshot(max_age=0).runs)  # a whole-page run follows a user's action: read now
if not runs:
    st.info(
        "No runs yet. Train the tiny model on the built-in demo set (about 40 s on an idle 2-core CPU), "
        "or set your own hyperparameters on the Train page."
    )
    st.button(
        "Start the quick demo",
        icon=":material/bolt:",
        on_click=_quick_demo,
        type="primary",
        key="runs_quick_demo",
        disabled=allowed(actor, "launch", None) is not None,
    )
    _audit_log()
    st.stop()

#: With login: a filter to one's own runs.
mine_only = actor.role != "local" and (
    st.segmented_control("Show", ["all", "mine"], default="all", key="runs_whose") == "mine"
)


def _listed(runs: Sequence[manager.RunInfo]) -> dict[str, manager.RunInfo]:
    """Name -> run, of the runs this page lists: all, or with "mine" those the actor launched."""
    return {r.name: r for r in runs if not mine_only or r.status.owner == actor.name}


by_name = _listed(runs)
if not by_name:
    st.info("None of the runs is yours yet.")
    _audit_log()
    st.stop()
picked = st.session_state.get("runs_pick")
if picked is None or (picked and not set(picked) & by_name.keys()):  # new here, or none listed now ("mine")
    chosen = [n for n in st.session_state.get("runs_selected", []) if n in by_name]
    st.session_state["runs_pick"] = chosen or [next(iter(by_name))]
pick_col, smooth_col = st.columns([3, 1])
selected = pick_col.multiselect("Show runs (pick several to compare)", list(by_name), key="runs_pick")
st.session_state["runs_selected"] = selected
smoothing = smooth_col.slider(
    "Smoothing of train_loss", 0.0, 0.99, 0.6, 0.01, key="runs_smoothing", persist_state="session"
)
axis_col, log_col, image_col = st.columns([2, 1, 1], vertical_alignment="bottom")
x_axis = axis_col.segmented_control(
    "Curves against", X_AXES, default="step", key="runs_x_axis", help="time: since each run's first point"
)
log_loss = log_col.toggle("Loss on a log scale", key="runs_log_loss")
image = image_col.segmented_control(
    "Save figures as", ["png", "svg"], default="png", key="runs_image", help="the camera icon above a figure saves it"
)
#: plotly's toolbar saves the figure in the chosen format, at the size it is shown.
CHART_CONFIG = {"toImageButtonOptions": {"format": image or "png", "filename": "autotag-curves"}}
#: How each number of the runs table reads. Numbers are shown as text, right-aligned: the grid
#: writes a missing number as "None", and a blank says "not yet" or "n/a" better. (The table
#: is sorted by the Sort by choice, not by its headers.)
NUMBER_FORMATS = {
    "best val_loss": "{:.4f}",
    "val ROC-AUC": "{:.3f}",
    "val PR-AUC": "{:.3f}",
    "test ROC-AUC": "{:.3f}",
    "duration (s)": "{:.0f}",
    "ETA (s)": "{:.0f}",
}
COLUMNS = {
    "run": st.column_config.TextColumn(width="medium", pinned=True),  # a long name is cut; its hover shows it all
    "progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0, format="percent"),
    "created": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm"),
    **{c: st.column_config.TextColumn(alignment="right") for c in NUMBER_FORMATS},
}
#: The runs table's columns shown at first; the others are one choice away.
SHOWN_FIRST = ["run", "state", "model", "data", "epoch", "progress", "best val_loss", "val ROC-AUC", "test ROC-AUC"]
ALL_COLUMNS = [*SHOWN_FIRST, "val PR-AUC", "duration (s)", "ETA (s)", "sweep", "owner", "created"]
#: Rows a page of the runs table shows.
PAGE_ROWS = 50

search_col, sort_col, order_col = st.columns([3, 2, 1])
search = search_col.text_input("Search runs", key="runs_search", placeholder="part of a run's name")
sort_by = sort_col.selectbox("Sort by", SORTABLE, key="runs_sort")
descending = order_col.toggle("Descending", value=True, key="runs_descending")
with st.expander("Filters and columns"):
    options = facet_values(list(shared.snapshot().rows))
    facet_cols = st.columns(len(FACETS))
    chosen_facets = {
        facet: tuple(col.multiselect(facet, options[facet], key=f"runs_filter_{facet}"))
        for facet, col in zip(FACETS, facet_cols)
    }
    group_sweeps = st.toggle("One row per sweep (filter by a sweep to see its trials)", value=True, key="runs_group")
    shown_columns = st.multiselect("Columns", ALL_COLUMNS, default=SHOWN_FIRST, key="runs_columns")
if mine_only:  # "mine" narrows the table as it narrows the picker
    chosen_facets["owner"] = (actor.name,)
keep = RunFilter(text=search.strip(), **chosen_facets)


def _runs_table(snapshot: Snapshot) -> None:
    """The search, filters, sort and page the user chose, over the shared listing."""
    rows = select_rows(list(snapshot.rows), keep, sort_by, descending, group_sweeps)
    _, pages = page_of(rows, 1, PAGE_ROWS)
    number = 1
    if pages > 1:
        st.session_state["runs_page"] = min(st.session_state.get("runs_page", 1), pages)  # the filter may shrink it
        page_col, count_col = st.columns([1, 5], vertical_alignment="bottom")
        number = page_col.number_input("Page", min_value=1, max_value=pages, step=1, key="runs_page")
        first = (number - 1) * PAGE_ROWS
        count_col.caption(f"rows {first + 1}-{min(first + PAGE_ROWS, len(rows))} of {len(rows)}")
    shown, _ = page_of(rows, number, PAGE_ROWS)
    table = pd.DataFrame(shown, columns=ALL_COLUMNS)[[c for c in ALL_COLUMNS if c in shown_columns] or ["run"]]
    if "created" in table:
        table["created"] = pd.to_datetime(table["created"], unit="s")
    for column in table:
        if column in NUMBER_FORMATS:
            shape = NUMBER_FORMATS[column]
            table[column] = [
                "" if v is None or v != v else shape.format(v) for v in table[column]
            ]  # NaN != NaN: a blank too
        elif column not in COLUMNS:
            table[column] = table[column].fillna("")
    st.dataframe(table, hide_index=True, column_config=COLUMNS)
    if not rows:
        st.caption("No run matches the search and filters.")


@st.fragment
def _live_view(names: list[str], weight: float, log_loss: bool, x: str, legend: dict[str, str]) -> None:
    """Table, curves and progress lines; reruns alone while the tab is visible (see ui.ticker)."""
    acting()  # a fragment reruns without app.py's gate: a session logged out (or demoted to no role) stops
    snapshot = shared.snapshot()
    fresh = snapshot.by_name()
    _runs_table(snapshot)
    readers = shared.readers([fresh[n] for n in names if n in fresh])
    for name, reader in readers.items():
        if reader.problems:
            st.warning(
                f"{name}: damaged TensorBoard records were skipped, the curve may have gaps:\n\n- "
                + "\n- ".join(reader.problems[:5])
            )
        if fresh[name].state.final and reader.pending_bytes():
            st.warning(f"{name}: its event file ends in an incomplete record ({reader.pending_bytes()} bytes).")
    trained_here = [n for n in names if not (n in fresh and fresh[n].status.published)]
    if trained_here:  # drawn empty too: the browser loads plotly while the trainer starts, not after
        figure = shared.figure(readers, weight, log_loss, x, legend)
        st.plotly_chart(figure, key="runs_curves", config=CHART_CONFIG)
        st.download_button(
            "Download the curves (CSV)",
            data=lambda: curves_csv(readers),  # built on the click, not on every refresh
            file_name="curves.csv",
            mime="text/csv",
            key="runs_curves_csv",
        )
        with st.expander("Validation ROC-AUC of each tag"):
            run = trained_here[0]
            if len(trained_here) > 1:
                run = st.selectbox("Run", trained_here, format_func=lambda n: legend.get(n, n), key="runs_per_tag")
            if run in readers:
                st.plotly_chart(shared.tag_figure(run, readers[run], x), key="runs_tag_curves", config=CHART_CONFIG)
    elif names:
        st.caption("No curves: a published model was trained by its authors, not here.")
    rows = {row["run"]: row for row in snapshot.rows}
    for name in names:
        if name not in fresh:
            continue
        row = rows[name]
        eta = f", ETA ≤ {row['ETA (s)']} s" if row["ETA (s)"] else ""
        st.caption(f"**{name}**: {fresh[name].state} · epoch {row['epoch']} · {fresh[name].status.phase or ''}{eta}")
    listed = _listed(snapshot.runs)  # not `fresh`: with "mine", others' runs come and go unlisted
    if listed.keys() != by_name.keys() or any(r.state != by_name[n].state for n, r in listed.items()):
        st.rerun()  # a listed run appeared, went, started or ended: refresh the whole page (buttons, metrics)
    refresh_clock("runs_clock", refresh_interval(snapshot, names, readers))


_live_view(selected, smoothing, log_loss, x_axis or "step", legend_names([by_name[n].path for n in selected]))

if len(selected) >= 2:
    st.subheader("Config differences")
    diff = config_differences([by_name[n].path for n in selected])
    shown = {field: {run: "" if v is None else str(v) for run, v in values.items()} for field, values in diff.items()}
    st.dataframe(pd.DataFrame(shown).T if diff else pd.DataFrame({"": ["identical configs"]}))
    robustness_section([by_name[n] for n in selected], actor)


def _published(facts: dict) -> None:
    """A published model's facts: its authors' scores are shown as theirs, never beside ours."""
    st.subheader(f"Published model: {facts.get('name')} ({facts.get('network')})")
    scores = ", ".join(
        f"{label} {facts[key]:.4f}"
        for label, key in (("ROC-AUC", "roc_auc_macro"), ("PR-AUC", "pr_auc_macro"))
        if isinstance(facts.get(key), float)
    )
    st.markdown(
        f"Trained by its authors on {facts.get('trained_on')}. "
        + (f"Their scores on their own test split: {scores} (not comparable to runs trained here). " if scores else "")
        + f"\n\n{facts.get('credit')}. Licence: {facts.get('licence')}."
    )


def _test_metrics(metrics: dict) -> None:
    """The test split's scores of the best checkpoint, as metrics.json has them."""
    st.subheader("Test metrics of the best checkpoint")
    m1, m2, m3 = st.columns(3)
    for column, label, key in ((m1, "ROC-AUC (macro)", "roc_auc_macro"), (m2, "PR-AUC (macro)", "pr_auc_macro")):
        value = metrics.get(key)
        column.metric(label, "n/a" if value is None else f"{value:.3f}")
    m3.metric("test clips", metrics.get("test_clips", 0))
    if metrics.get("note") and None in (metrics.get("roc_auc_macro"), metrics.get("pr_auc_macro")):
        st.caption(f"n/a: {metrics['note']}")
    per_tag = pd.DataFrame(metrics.get("per_tag", {})).T.sort_values("roc_auc", ascending=False)
    st.dataframe(
        per_tag,
        column_config={
            "roc_auc": st.column_config.NumberColumn("ROC-AUC", format="%.3f"),
            "pr_auc": st.column_config.NumberColumn("PR-AUC", format="%.3f"),
        },
    )
    if metrics.get("unscored_tags"):
        st.caption("No positive (or no negative) in the test split, not scored: " + ", ".join(metrics["unscored_tags"]))


def _stop(info: manager.RunInfo) -> None:
    with st.spinner("Stopping (the current batch finishes first) ..."):
        manager.stop(info.path, actor=actor)


def _delete(info: manager.RunInfo) -> None:
    manager.delete(info.path, actor=actor)
    st.session_state["runs_selected"] = []


def _confirm(
    action: str, info: manager.RunInfo, question: str, yes: str, then: Callable[[manager.RunInfo], None]
) -> None:
    """The question asked after a click on `action`'s button, until the user answers it."""
    if st.session_state.get(f"runs_confirm_{action}") != info.name:
        return
    st.warning(question)
    c1, c2, _ = st.columns([1, 1, 3])
    if c1.button(yes, key=f"runs_{action}_yes"):
        st.session_state.pop(f"runs_confirm_{action}")
        then(info)
        st.rerun()
    if c2.button("Cancel", key=f"runs_{action}_no"):
        st.session_state.pop(f"runs_confirm_{action}")
        st.rerun()


if len(selected) == 1:
    info = by_name[selected[0]]
    folder = RunFolder(info.path)
    b1, b2, b3, _ = st.columns([1, 1, 1, 3])
    why_not = allowed(actor, "stop", info.status.owner)  # the same for resume, delete, export
    blocked = {action: manager.unavailable(action, info) for action in ("stop", "resume", "delete")}
    try:
        if b1.button(
            "Stop",
            icon=":material/stop:",
            disabled=why_not is not None or blocked["stop"] is not None,
            help=why_not or blocked["stop"],
            key="runs_stop",
        ):
            if info.state.active and not has_checkpoint(info.path):  # stopped now, it could not resume
                st.session_state["runs_confirm_stop"] = info.name
            else:
                _stop(info)
                st.rerun()
        if b2.button(
            "Resume",
            icon=":material/play_arrow:",
            disabled=why_not is not None or blocked["resume"] is not None,
            help=why_not or blocked["resume"],
            key="runs_resume",
        ):
            manager.resume(info.path, actor=actor)
            st.rerun()
        if b3.button(
            "Delete",
            icon=":material/delete:",
            disabled=why_not is not None or blocked["delete"] is not None,
            help=why_not or blocked["delete"],
            key="runs_delete",
        ):
            st.session_state["runs_confirm_delete"] = info.name
        _confirm(
            "stop",
            info,
            f"{info.name} has not saved its first checkpoint yet: stopped now, it cannot resume and must be "
            "trained again. Keep it training until the first validation saves one, or stop it anyway?",
            "Stop anyway",
            _stop,
        )
        _confirm(
            "delete", info, f"Delete {info.name} and its checkpoints? This cannot be undone.", "Yes, delete it", _delete
        )
    except (AutotagError, AccessDenied) as exc:
        st.error(str(exc))
    if actor.role != "local":
        st.caption(f"Launched by {info.status.owner or 'someone before owners were recorded'}")
    if info.state in (RunState.FAILED, RunState.CRASHED, RunState.UNKNOWN) and info.status.error:
        st.error(info.status.error)
    if info.status.val_note:
        st.caption(f"Validation: {info.status.val_note}")
    if info.status.init_checkpoint or info.status.ended_by:
        started = f"Started from {info.status.init_checkpoint}" if info.status.init_checkpoint else ""
        ended = f"Training ended: {info.status.ended_by}" if info.status.ended_by else ""
        st.caption(" · ".join(part for part in (started, ended) if part))
    metrics = folder.read_json(folder.metrics) if info.state is RunState.COMPLETED else None
    if isinstance(metrics, dict) and isinstance(metrics.get("published"), dict):
        _published(metrics["published"])
    elif isinstance(metrics, dict):
        try:
            _test_metrics(metrics)
        except (TypeError, ValueError, KeyError, AttributeError) as exc:  # a metrics.json autotag did not write
            st.warning(f"{folder.metrics.name} cannot be shown ({type(exc).__name__}): it is not as autotag writes it")
    robustness_section([info], actor)
    if info.state is RunState.COMPLETED:
        with st.expander("Export the model (log-mel front end included)"):
            fmt = st.radio(
                "Format", ["torchscript", "onnx"], horizontal=True, key="runs_export_format", persist_state="session"
            )
            if st.button("Export", key="runs_export", disabled=why_not is not None, help=why_not):
                from autotag.serving.export import export_run

                try:
                    with st.spinner("Exporting and checking against the PyTorch model ..."):
                        path, diff = export_run(info.path, fmt, actor=actor)
                    st.session_state["runs_exported"] = (str(path), diff)
                except AccessDenied as exc:
                    st.error(str(exc))
            done = st.session_state.get("runs_exported")
            if done and Path(done[0]).is_relative_to(info.path):
                st.caption(f"{Path(done[0]).name}: largest difference to the PyTorch model {done[1]:.1e}")
                st.download_button(
                    "Download", Path(done[0]).read_bytes(), file_name=Path(done[0]).name, key="runs_export_download"
                )
    with st.expander("Log (last 40 lines)"):
        st.code(manager.log_tail(info.path, 40) or "(empty)", language=None)
    with st.expander("Config"):
        st.code(text_head(folder.config), language="yaml")
        st.caption(f"Reproduce in a terminal: `python -m autotag fit --config {folder.config}`")
_audit_log()
