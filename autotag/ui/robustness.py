"""The Runs page's robustness section: make a report in the background, watch it, read it.

One run: its report as a heatmap (perturbation x strength -> change in macro ROC-AUC) and
a per-tag view of one perturbation (which tags break first), or the report's progress with
an ETA and Stop, or a button that starts one. Two runs: their heatmaps side by side on one
colour scale. The report itself runs in its own process (`autotag.robustness.job`).
"""

from __future__ import annotations

import time

import streamlit as st

from autotag.access import AccessDenied, Actor, allowed
from autotag.audio.perturb import PERTURBATIONS
from autotag.data.demo import default_demo_dir
from autotag.errors import AutotagError
from autotag.robustness import job
from autotag.runs.manager import RunInfo, unavailable
from autotag.store.job import RunState
from autotag.ui.auth import acting
from autotag.ui.charts import robustness_figure, robustness_span, robustness_tags_figure, worst_drops
from autotag.ui.ticker import refresh_clock


def robustness_section(runs: list[RunInfo], actor: Actor) -> None:
    """The section for the selected runs (one or two); nothing for a run still training."""
    ended = [r for r in runs if r.state.final]
    if not ended or len(runs) > 2:
        return
    st.subheader("Robustness report")
    if len(ended) == 2:
        _side_by_side(ended)
        return
    run = ended[0]
    folder = job.ReportFolder(run.path)
    if folder.state().active:
        _progress(run)
        return
    report = folder.read_report()
    status = folder.read_status()
    if status.state in (RunState.FAILED, RunState.CRASHED) and status.error:
        st.error(f"The last report failed: {status.error}")
    if status.state is RunState.STOPPED:
        st.info(f"A report was stopped after {status.done} of {status.total} clips; Make it goes on from there.")
    if report:
        _one(report, run.name, status)
    _start_form(run, actor, again=report is not None)


def _one(report: dict, name: str, status: job.ReportStatus) -> None:
    st.plotly_chart(robustness_figure(report), key=f"robust_{name}")
    clean = report["clean"]
    st.caption(
        f"The {status.split or 'test'} split{f' of {status.data}' if status.data else ''}, clean audio: "
        f"ROC-AUC {clean['roc_auc_macro']:.3f}, "
        f"PR-AUC {clean['pr_auc_macro']:.3f}. "
        "Each cell: the strength and the change in macro ROC-AUC. "
        + (f"{status.skipped} clip(s) could not be decoded. " if status.skipped else "")
        + (f"Made in {status.ended - status.started:.0f} s." if status.ended and status.started else "")
    )
    names = [n for n in report if n != "clean"]
    worst = min(names, key=lambda n: min(r["roc_auc_macro"] for r in report[n].values()))
    pick = st.selectbox(
        "Per tag: which tags break first under", names, index=names.index(worst), key=f"robust_pick_{name}"
    )
    st.plotly_chart(robustness_tags_figure(report, pick), key=f"robust_tags_{name}")
    flipped = {label: row["flipped"] for label, row in report[pick].items()}
    st.caption(
        "Decisions at the run's thresholds that differ from the clean audio's: "
        + ", ".join(f"{label} {share:.0%}" for label, share in flipped.items())
    )


def _side_by_side(runs: list[RunInfo]) -> None:
    reports = {r.name: job.ReportFolder(r.path).read_report() for r in runs}
    missing = [n for n, rep in reports.items() if rep is None]
    if missing:
        st.caption(
            f"No robustness report of {', '.join(missing)} yet: "
            "select that run alone to make one, then both to compare."
        )
        return
    span = robustness_span(*reports.values())
    columns = st.columns(2)
    for column, (name, report) in zip(columns, reports.items()):
        clean = report["clean"]["roc_auc_macro"]
        column.plotly_chart(
            robustness_figure(report, f"{name}<br>clean ROC-AUC {clean:.3f}", span), key=f"robust_cmp_{name}"
        )
    shared = [n for n in next(iter(reports.values())) if n != "clean" and all(n in rep for rep in reports.values())]
    if not shared:
        st.caption("The two reports share no perturbation to compare tag by tag.")
        return
    pick = st.selectbox("Per tag, side by side", shared, key="robust_cmp_pick")
    worst: dict[str, float] = {}
    for report in reports.values():
        for tag, drop in worst_drops(report, pick).items():
            seen = drop if drop == drop else float("inf")  # NaN: not scored under it, last
            worst[tag] = min(worst.get(tag, seen), seen)
    order = sorted(worst, key=worst.__getitem__)  # one row order for both: their rows line up
    for column, (name, report) in zip(st.columns(2), reports.items()):
        column.plotly_chart(robustness_tags_figure(report, pick, span, order), key=f"robust_cmp_tags_{name}")


@st.fragment
def _progress(run: RunInfo) -> None:
    actor = acting()  # a fragment reruns without app.py's gate: who acts now
    folder = job.ReportFolder(run.path)
    state = folder.state()
    if not state.active:
        st.rerun()  # it ended: the whole section shows the report
    status = folder.read_status()
    done, total = status.done, status.total or 0
    eta = status.eta_s()
    st.progress(
        done / total if total else 0.0,
        text=f"Robustness report: {done} of {total or '?'} clips scored"
        + (f", about {eta:.0f} s left" if eta is not None else "")
        + f" (started {time.strftime('%H:%M:%S', time.localtime(status.started))})"
        if status.started
        else "Robustness report: starting ...",
    )
    why_not = allowed(actor, "robustness", run.status.owner)
    if st.button(
        "Stop the report", icon=":material/stop:", key="robust_stop", disabled=why_not is not None, help=why_not
    ):
        try:
            job.stop(run.path, actor=actor)
        except AccessDenied as exc:
            st.error(str(exc))
    refresh_clock("robust_clock", 1.0)


def _start_form(run: RunInfo, actor: Actor, again: bool) -> None:
    with st.expander("Make the report again" if again else "Make a robustness report", expanded=not again):
        st.caption(
            "Scores the test split clean and under each perturbation below, in a background process "
            "(a few minutes for a small test split on a CPU). It goes on after a page reload; "
            "Stop keeps what it scored."
        )
        data = None
        if run.status.published:  # its data set is not here: the user names one
            data = st.text_input(
                "Data set to score (its test split; the tags it shares with the model count)",
                value=str(default_demo_dir()),
                key=f"robust_data_{run.name}",
            )
        names = st.multiselect(
            "Perturbations",
            list(PERTURBATIONS),
            default=list(PERTURBATIONS),
            format_func=lambda n: f"{n}: {PERTURBATIONS[n].about}",
            key=f"robust_names_{run.name}",
        )
        why_not = allowed(actor, "robustness", run.status.owner) or unavailable("report", run)
        if st.button(
            "Make it",
            icon=":material/play_arrow:",
            disabled=not names or why_not is not None,
            help=why_not,
            key=f"robust_start_{run.name}",
        ):
            try:
                job.start(run.path, "test", names, actor=actor, data=data or None)
            except (AutotagError, AccessDenied) as exc:
                st.error(str(exc))
                return
            st.rerun()
