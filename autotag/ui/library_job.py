"""The Library page's background tagging: start tagging a folder, watch it, Stop and Resume (`library.job`)."""

from __future__ import annotations

import time
from pathlib import Path

import streamlit as st

from autotag.access import AccessDenied, Actor, allowed
from autotag.errors import AutotagError
from autotag.library import job
from autotag.library.browse import library_path
from autotag.library.scan import FORMATS
from autotag.paths import absolute
from autotag.runs import manager
from autotag.runs.table import best_run
from autotag.store.job import RunState
from autotag.store.run_folder import RunFolder, default_runs_dir
from autotag.text import human_duration
from autotag.ui.auth import acting
from autotag.ui.ticker import refresh_clock

#: Seconds between two looks at a running job's status.
REFRESH_S = 2.0
#: The session key of the Library page's "Library file" box, which a started job fills in.
PATH_KEY = "library_path"


def start_form(actor: Actor, expanded: bool) -> None:
    """Choose a model, a folder and a library file; Start tags the folder in the background."""
    with st.expander("Tag a folder in the background", expanded=expanded, icon=":material/library_add:"):
        runs = [r for r in manager.list_runs(default_runs_dir()) if _can_tag(r)]
        if not runs:
            st.caption("No run has a model yet: train one (Train page) or import a published one (Tag page).")
            return
        best = best_run(runs)
        by_name = {r.name: r for r in runs}
        run = st.selectbox(
            "Model (run)",
            list(by_name),
            index=list(by_name).index(best.name) if best else 0,
            key="library_job_run",
        )
        folder = st.text_input(
            "Folder to tag",
            key="library_job_folder",
            placeholder="data/my-music",
            help="Every audio file in it and its subfolders (wav, flac, ogg, mp3) gets a row.",
        )
        default_out = _default_out(folder)
        out = st.text_input(
            "Library file to write",
            key="library_job_out",
            placeholder=default_out or "lib.sqlite",
            help="A new file: .sqlite (or none: SQLite), .csv or .jsonl. Empty: the placeholder's name.",
        )
        formats = st.multiselect("Formats", list(FORMATS), default=list(FORMATS), key="library_job_formats")
        why_not = allowed(actor, "library", None)
        st.button(
            "Start tagging",
            icon=":material/play_arrow:",
            disabled=why_not is not None or not folder.strip() or not formats,
            help=why_not or "Runs in a process of its own: it goes on after a page reload; Stop keeps what it tagged.",
            key="library_job_start",
            on_click=_start,
            args=(run, folder.strip(), out.strip() or default_out, formats, actor),
        )
        if "library_job_error" in st.session_state:
            st.error(st.session_state.pop("library_job_error"))


def _can_tag(run: manager.RunInfo) -> bool:
    ended_with_model = run.state in (RunState.COMPLETED, RunState.STOPPED, RunState.PRUNED)
    return ended_with_model and RunFolder(run.path).checkpoints.is_dir()


def _default_out(folder: str) -> str:
    """`<the runs folder's parent>/<the folder's name>.sqlite`: where the page looks for libraries."""
    name = Path(folder.strip().rstrip("/")).name if folder.strip() else ""
    return str(absolute(default_runs_dir()).parent / f"{name}.sqlite") if name not in ("", ".", "..") else ""


def _start(run: str, folder: str, out: str, formats: list[str], actor: Actor) -> None:
    """Start's callback (before the page reruns, so it may fill in the "Library file" box)."""
    try:
        target = library_path(out)
        library_path(folder, "a folder to tag")
        job.start(
            target, job.TagRequest(run, [folder], formats), resume=False, runs_dir=default_runs_dir(), actor=actor
        )
    except (AutotagError, AccessDenied) as exc:
        st.session_state["library_job_error"] = str(exc)
        return
    st.session_state[PATH_KEY] = str(target)


@st.fragment
def job_panel(library: Path, seen: RunState) -> None:
    """The library's job: progress and Stop while it runs, its outcome and Resume after.

    Reruns alone every REFRESH_S while the job runs (the whole page once it ends, or when
    another viewer starts or stops it: `seen` is the state the page was drawn with).
    """
    actor = acting()  # a fragment reruns without app.py's gate: who acts now
    tagging = job.LibraryJob(library)
    state = tagging.state()
    if state != seen:
        st.rerun()  # started, stopped or ended: the whole page shows the library as it is now
    status = tagging.read_status()
    try:
        owner = tagging.read_request().owner
    except job.LibraryJobError as exc:
        st.warning(str(exc))
        owner = None
    why_not = allowed(actor, "library", owner)
    if state.active:
        _running(status)
        stop = st.button("Stop", icon=":material/stop:", key="library_job_stop", disabled=bool(why_not), help=why_not)
        if stop:
            try:
                job.stop(library, default_runs_dir(), actor)
            except AccessDenied as exc:
                st.error(str(exc))
        refresh_clock("library_job_clock", REFRESH_S)
        return
    _ended(state, status, tagging)
    if state in (RunState.STOPPED, RunState.CRASHED, RunState.FAILED):
        if st.button(
            "Resume",
            icon=":material/play_arrow:",
            key="library_job_resume",
            disabled=why_not is not None,
            help=why_not or "Tags the files not in the library yet, and those that changed or failed",
        ):
            try:
                job.resume(library, default_runs_dir(), actor)
            except (AutotagError, AccessDenied) as exc:
                st.error(str(exc))
            else:
                st.rerun()


def _running(status: job.JobStatus) -> None:
    if status.phase != "tagging" or not status.to_do or not status.done:
        what = f"0 of {status.to_do:,} files" if status.phase == "tagging" else status.phase or "starting"
        st.progress(0.0, text=f"Tagging: {what} ...")
        return
    eta = status.eta_s()
    rate = status.done / max(time.time() - (status.started or time.time()), 1e-3) * 60
    st.progress(
        min(1.0, status.done / status.to_do),
        text=f"Tagging: {status.done:,} of {status.to_do:,} files ({rate:.0f} a minute)"
        + (f", {human_duration(eta)} left" if eta is not None else ""),
    )


def _ended(state: RunState, status: job.JobStatus, tagging: job.LibraryJob) -> None:
    counts = f"tagged {status.tagged:,}, skipped {status.skipped:,} (already in it), failed {status.failed:,}"
    if state == RunState.COMPLETED:
        st.success(f"Tagging completed: {counts}.", icon=":material/check_circle:")
    elif state == RunState.STOPPED:
        st.info(f"Tagging stopped: {counts}. Resume tags the rest.", icon=":material/pause_circle:")
    else:
        st.error(f"Tagging {state}: {status.error or 'see its log'}", icon=":material/error:")
        st.code(_tail(tagging.log), language=None)
    for failure in status.failures:
        st.caption(f"failed: {failure}")


def _tail(log: Path, lines: int = 15) -> str:
    try:
        with log.open("rb") as fh:
            fh.seek(max(0, log.stat().st_size - 8000))
            return "\n".join(fh.read().decode("utf-8", "replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
