"""Sweep: drag ranges, launch a search in the background, watch trials finish or get pruned."""

from __future__ import annotations

import runpy
from pathlib import Path

import pandas as pd
import streamlit as st

from autotag.access import AccessDenied, allowed
from autotag.config import ConfigError, TrainConfig, field_choices, field_range, log_stops
from autotag.data.demo import default_demo_dir
from autotag.errors import AutotagError
from autotag.models.specs import SPECS
from autotag.runs.manager import max_parallel
from autotag.store.run_folder import RunFolder, default_runs_dir
from autotag.sweeps import manager
from autotag.training.trial import DIRECTIONS
from autotag.ui.auth import acting
from autotag.ui.sidebar import counts_now
from autotag.ui.ticker import refresh_clock

if "_app_nav" not in st.session_state:  # run alone by Streamlit's older pages/ layout: see app.py
    runpy.run_path(str(Path(__file__).parents[1] / "app.py"), run_name="__main__")
    st.stop()
actor = acting()  # who acts; a page run alone (see app.py) by a session with nobody logged in stops

REFRESH_S = 2.0
#: Learning rates as on the Train page, up to the schema's 1.0 (a hopeless one shows pruning).
LRS = log_stops(1e-5, field_range("lr")[1])
BATCHES = [4, 8, 16, 32, 64, 128]
#: Fields offered here, with the widget each gets; any field can be searched from the CLI.
SEARCHABLE = {
    "lr": "Learning rate (log scale)",
    "batch_size": "Batch size",
    "model": "Model",
    "weight_decay": "Weight decay",
    "mixup": "Mixup (alpha)",
    "chunks_per_clip": "Training chunks per clip and epoch",
    "freq_mask": "Frequency mask (mel bands)",
    "time_mask": "Time mask (frames)",
    "gain_db": "Random gain (± dB)",
    "noise_snr_db": "Noise: lowest SNR (dB)",
    "chunk_seconds": "Chunk length (s)",
    "patience": "Early-stopping patience",
}
DEFAULT_RANGES = {"mixup": (0.0, 0.4), "chunks_per_clip": (1, 8), "freq_mask": (0, 16), "time_mask": (0, 40)}


def _entry(field: str) -> str | None:
    """The `FIELD=SPEC` entry of one searched field from its widget, or None if it searches nothing."""
    key = f"sweep_space_{field}"
    if field == "lr":
        lo, hi = st.select_slider(SEARCHABLE[field], LRS, value=(1e-4, 1e-2), key=key, format_func=lambda v: f"{v:g}")
        return f"lr={lo}:{hi}:log" if lo < hi else None
    if field in ("batch_size", "weight_decay", "model"):
        options = {"batch_size": BATCHES, "weight_decay": [0.0, 1e-5, 1e-4, 1e-3, 1e-2]}.get(field) or field_choices(
            field
        )
        default = {"batch_size": [8, 16, 32], "weight_decay": [0.0, 1e-4], "model": ["tiny", "fcn"]}[field]
        chosen = st.multiselect(SEARCHABLE[field], options, default=default, key=key)
        return f"{field}={','.join(map(str, chosen))}" if len(chosen) >= 2 else None
    lo, hi = field_range(field)
    is_int = TrainConfig.model_fields[field].annotation is int
    start = DEFAULT_RANGES.get(field, (lo, hi))
    step = 1 if is_int else (0.05 if hi <= 1 else 0.5)
    low, high = st.slider(SEARCHABLE[field], lo, hi, start, step=step, key=key)
    return f"{field}={low}:{high}" if low < high else None


def _launch(fixed: dict, entries: list[str]) -> None:
    try:
        folder = manager.new_sweep(
            fixed,
            entries,
            trials=st.session_state["sweep_trials"],
            parallel=st.session_state.get("sweep_parallel", 1),
            sampler=st.session_state["sweep_sampler"],
            pruner=st.session_state["sweep_pruner"],
            metric=st.session_state["sweep_metric"],
            name=st.session_state["sweep_name"] or None,
            first=[line.strip() for line in st.session_state["sweep_first"].splitlines() if line.strip()],
            actor=acting(),  # who acts now, not when the page was drawn
        )
    except (AutotagError, AccessDenied) as exc:
        st.session_state["sweep_error"] = str(exc)
        return
    manager.start(folder, actor=acting())
    st.session_state["sweep_selected"] = folder.name
    st.session_state.pop("sweep_error", None)


def _use_on_train(run: Path) -> None:
    """The best trial's whole config on the Train page's widgets."""
    import uuid

    try:
        config = RunFolder(run).read_config()
    except ConfigError as exc:
        st.session_state["sweep_error"] = str(exc)
        return
    for name in TrainConfig.model_fields:
        if name in config:
            st.session_state[f"train_{name}"] = config[name]
    st.session_state.update(train_init_from="", train_name=f"{run.name.split('_')[1]}-best")
    st.session_state.setdefault("train_session", uuid.uuid4().hex)
    st.switch_page("pages/train.py")


def _open_on_tag(run: Path) -> None:
    st.session_state["tag_run"] = run.name
    st.switch_page("pages/tag.py")


st.title("Sweep hyperparameters")
runs_dir = default_runs_dir()
sweeps = manager.list_sweeps(runs_dir)

with st.expander("New sweep", expanded=not sweeps):
    st.text_input("Data set folder", value=str(default_demo_dir()), key="sweep_data")
    searched = st.multiselect(
        "Fields to search",
        list(SEARCHABLE),
        default=["lr", "batch_size"],
        format_func=SEARCHABLE.get,
        key="sweep_fields",
    )
    entries = [e for e in (_entry(f) for f in searched) if e]
    c1, c2, c3 = st.columns(3)
    fixed: dict = {"data": st.session_state["sweep_data"]}
    with c1:
        if "model" not in searched:
            fixed["model"] = st.selectbox(
                "Model (every trial)", list(SPECS), index=list(SPECS).index("tiny"), key="sweep_model"
            )
        fixed["max_epochs"] = st.slider("Max epochs per trial", 1, 100, 20, key="sweep_max_epochs")
    with c2:
        st.slider("Trials", 2, 100, 12, key="sweep_trials", help="finished trials (complete or pruned)")
        if max_parallel() > 1:
            st.slider(
                "Trials at once",
                1,
                max_parallel(),
                1,
                key="sweep_parallel",
                help="each trial trains in its own process, at most AUTOTAG_MAX_RUNS at once",
            )
        else:
            st.caption("One trial at a time: this machine trains one run at once (raise AUTOTAG_MAX_RUNS for more).")
    with c3:
        st.selectbox("Sampler", ["tpe", "random", "grid"], key="sweep_sampler")
        st.selectbox("Pruner", ["median", "hyperband", "none"], key="sweep_pruner")
        st.selectbox("Rank trials by", list(DIRECTIONS), key="sweep_metric")
    n1, n2 = st.columns(2)
    n1.text_input("Sweep name", key="sweep_name", placeholder="e.g. lr-batch")
    n2.text_area(
        "Trials to run first (optional)",
        key="sweep_first",
        height=68,
        placeholder="lr=0.003,batch_size=16   (one trial per line: a config that went well)",
        help="Run before the sampler's own trials, e.g. the config of a run that went well",
    )
    st.caption("Searched: " + (" · ".join(f"`{e}`" for e in entries) or "nothing yet: pick a field and a range"))
    st.button(
        "Launch sweep",
        icon=":material/rocket_launch:",
        type="primary",
        disabled=not entries or allowed(actor, "sweep", None) is not None,
        help=allowed(actor, "sweep", None),
        on_click=_launch,
        args=(fixed, entries),
        key="sweep_launch",
    )
    if "sweep_error" in st.session_state:
        st.error(st.session_state["sweep_error"])


def _states(infos: list[manager.SweepInfo]) -> list[tuple[str, str]]:
    return [(s.name, s.state.value) for s in infos]


counts = counts_now(runs_dir)  # the sidebar's counts (`ui.sidebar`): this page keeps them fresh


@st.fragment
def _watch(drawn: list[tuple[str, str]]) -> None:
    """The page's one refresh clock while no sweep runs: a sweep started from the CLI, or a
    run started or ended anywhere, redraws the page (every 5 s while a run trains or waits,
    else 30 s)."""
    acting()  # a fragment reruns without app.py's gate: a session logged out since sees nothing
    now = counts_now(runs_dir)
    if _states(manager.list_sweeps(runs_dir)) != drawn or now != counts:
        st.rerun()
    refresh_clock("sweep_watch_clock", now.interval_s)


if not sweeps:
    st.info("No sweeps yet: choose the fields to search and their ranges above, then Launch.")
    _watch([])
    st.stop()

sweeps = manager.list_sweeps(runs_dir)  # a launch above may have added one
drawn = _states(sweeps)  # what this page shows: a change redraws it whole
names = [s.name for s in sweeps]
selected = st.session_state.get("sweep_selected")
name = st.selectbox("Sweep", names, index=names.index(selected) if selected in names else 0, key="sweep_pick")
info = next(s for s in sweeps if s.name == name)


@st.fragment
def _live_view(name: str) -> None:
    """The comparison, the chosen sweep's trials and figures; reruns alone while a sweep runs
    and the tab is visible (see ui.ticker)."""
    actor = acting()  # a fragment reruns without app.py's gate: who acts now
    from autotag.sweeps.results import best_row, compare_sweeps, load_study, sweep_figures, trial_rows

    infos = manager.list_sweeps(runs_dir)
    if _states(infos) != drawn or counts_now(runs_dir) != counts:
        st.rerun()  # a sweep or a trial started or ended: the whole page (its sweeps, the sidebar's counts)
    st.caption("All sweeps, by their best value")
    st.dataframe(pd.DataFrame(compare_sweeps(infos)), hide_index=True, key="sweep_compare")
    info = next(s for s in infos if s.name == name)
    study = load_study(info.folder)
    rows = trial_rows(study)
    best = best_row(study)
    direction = "lower" if DIRECTIONS[info.spec.metric] == "minimize" else "higher"
    head = f"**{info.state}** · {sum(r.state in ('complete', 'pruned') for r in rows)}/{info.spec.trials} finished"
    head += f" · {info.spec.sampler} sampler, {info.spec.pruner} pruner · {info.spec.metric} ({direction} is better)"
    st.markdown(head)
    if info.status.error:
        st.error(info.status.error)
    b1, b2, b3, b4 = st.columns(4)
    why_not = allowed(actor, "stop", info.status.owner)  # the same for resume
    try:
        if info.state.active:
            if b1.button(
                "Stop sweep", icon=":material/stop:", key="sweep_stop", disabled=why_not is not None, help=why_not
            ):
                manager.stop(info.folder, actor=actor)
                st.rerun()
        elif info.state.resumable:
            if b1.button(
                "Resume sweep",
                icon=":material/play_arrow:",
                key="sweep_resume",
                disabled=why_not is not None,
                help=why_not,
            ):
                manager.check_resumable(info.folder, actor=actor)
                manager.start(info.folder, actor=actor)
                st.rerun()
    except (AutotagError, AccessDenied) as exc:
        st.error(str(exc))
    if best and best.run:
        run = Path(best.run)
        if b2.button("Open the best run on Tag", icon=":material/sell:", key="sweep_tag"):
            _open_on_tag(run)
        if b3.button("Use the best config on Train", icon=":material/tune:", key="sweep_train"):
            _use_on_train(run)
        b4.markdown(f"best: trial {best.number}, {info.spec.metric} **{best.value:.4f}**")
    table = pd.DataFrame(
        [
            {
                "trial": r.number,
                "state": r.state,
                info.spec.metric: r.value,
                **{f"{k}": v for k, v in r.params.items()},
                "epochs": r.epochs,
                "seconds": r.seconds,
                "run": Path(r.run).name if r.run else None,
                "note": r.note or "",
            }
            for r in rows
        ]
    )
    st.dataframe(
        table,
        hide_index=True,
        key="sweep_trials_table",
        column_config={
            info.spec.metric: st.column_config.NumberColumn(format="%.4f"),
            "seconds": st.column_config.NumberColumn(format="%.0f"),
        },
    )
    figures = sweep_figures(study, info.folder.path)
    if not figures:
        st.caption("The figures appear when the first trial reports its first epoch.")
    for (title, fig), col in zip(figures.items(), st.columns(2) * 2):
        with col:
            st.plotly_chart(fig, key=f"sweep_fig_{title}")  # each figure carries its own title
    if any(s.state.active for s in infos):
        refresh_clock("sweep_clock", REFRESH_S)


_live_view(info.name)
if not any(s.state.active for s in sweeps):
    _watch(drawn)  # the live view above has no clock then
