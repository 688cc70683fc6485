"""Train: every hyperparameter of the config schema as a widget, then launch in the background."""

from __future__ import annotations

import hashlib
import runpy
import uuid
from pathlib import Path

import streamlit as st

from autotag.access import AccessDenied, allowed
from autotag.config import QUICK_DEMO, ConfigError, TrainConfig, field_choices, field_range, log_stops, make_config
from autotag.data.demo import default_demo_dir
from autotag.errors import AutotagError
from autotag.models.specs import SPECS
from autotag.pretrained.catalogue import CATALOGUE
from autotag.runs.manager import PROJECT_ROOT, launch, list_runs
from autotag.store.job import RunState
from autotag.store.run_folder import default_runs_dir, sanitize_name
from autotag.text import counted, human_duration
from autotag.training.estimate import EstimateError, TimeEstimate
from autotag.training.finetune import check_init_source, source_settings
from autotag.training.slurm import sbatch_script
from autotag.ui.auth import acting
from autotag.ui.charts import tag_counts_figure

if "_app_nav" not in st.session_state:  # run alone by Streamlit's older pages/ layout: see app.py
    runpy.run_path(str(Path(__file__).parents[1] / "app.py"), run_name="__main__")
    st.stop()
actor = acting()  # who acts; a page run alone (see app.py) by a session with nobody logged in stops

# Stops of the select-sliders and numeric selectboxes are UI choices, each inside the schema's
# field_range (tests/test_app.py checks); the choices of choice fields come from the schema.
LRS = log_stops(1e-5, 0.1)
BATCHES = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
DEFAULTS = TrainConfig.model_fields
#: "Start from" for random weights: a selectbox shows None as "Choose an option", not as a choice.
SCRATCH = ""
#: "Start from" for a published model not imported yet: this prefix and its catalogue name.
TO_IMPORT = "import:"
#: Settings of how a run learns from its source, back to their defaults when it starts from scratch.
TRANSFER = ("freeze_epochs", "transfer", "backbone_lr_factor")
LEVEL_NAMES = {"relative": "relative — any level", "absolute": "absolute — as recorded"}


def _default(name: str):  # noqa: ANN202 - a config default of any type
    return DEFAULTS[name].default


def _init_state() -> None:
    """Widget values live in session state only (set once here), so presets can change them.

    Every schema field gets its default, also those without a widget (`audio_root`, `f_max`),
    so the config below is built from the schema's field list, not a copy of it.
    """
    for name in DEFAULTS:
        if name != "data":
            st.session_state.setdefault(f"train_{name}", _default(name))
    st.session_state.setdefault("train_data", str(default_demo_dir()))
    st.session_state.setdefault("train_name", "")
    st.session_state["train_init_from"] = SCRATCH
    st.session_state.setdefault("train_session", uuid.uuid4().hex)
    _apply_model_defaults()


def _apply_model_defaults() -> None:
    """Feature settings follow the model's paper values when the model changes."""
    spec = SPECS[st.session_state["train_model"]]
    st.session_state["train_n_mels"] = spec.n_mels
    st.session_state["train_chunk_seconds"] = round(spec.chunk_seconds, 2)


def _apply_source() -> None:
    """Starting from a run needs its model and features: take them over when one is chosen."""
    source = st.session_state["train_init_from"]
    if source == SCRATCH:  # a published model's loudness (absolute) is its recipe, not a choice
        st.session_state.update({f"train_{k}": _default(k) for k in (*TRANSFER, "level")})
        return
    if source.startswith(TO_IMPORT):
        return  # imported before the page draws the choice again (`_import_chosen`)
    try:
        settings = source_settings(source)
    except ConfigError:
        return  # the page's check of the source says why (check_init_source)
    for key, value in settings.items():
        st.session_state[f"train_{key}"] = value


def _quick_demo() -> None:
    st.session_state["train_data"] = str(default_demo_dir())
    st.session_state.update({f"train_{k}": v for k, v in QUICK_DEMO.items()}, train_name="quick-demo")
    st.session_state.update(train_init_from=SCRATCH, train_max_minutes=None)  # the demo starts from scratch
    st.session_state.update({f"train_{k}": _default(k) for k in (*TRANSFER, "level")})
    _apply_model_defaults()


def _import_chosen() -> None:
    """A published model chosen in "Start from" becomes a run first (mirror, cache or download),
    then the choice is that run; when it cannot be had, the choice goes back to scratch, and says why."""
    from autotag.pretrained.importer import get

    name = st.session_state["train_init_from"].removeprefix(TO_IMPORT)
    try:
        with st.spinner(f"Getting the published model {name} ..."):
            run_dir = get(name, actor=actor)
    except (AutotagError, AccessDenied) as exc:  # offline without a mirror, not the published file, a role
        st.session_state["train_init_from"] = SCRATCH
        st.error(str(exc))
        return
    st.session_state["train_init_from"] = str(run_dir)
    _apply_source()


def _source_label(source: str, published: dict[str, str]) -> str:
    if source == SCRATCH:
        return "scratch (random weights)"
    if source.startswith(TO_IMPORT):
        name = source.removeprefix(TO_IMPORT)
        return f"published {name}: {CATALOGUE[name].network.upper()} trained on {CATALOGUE[name].trained_on}"
    if source in published:
        return f"published {published[source]} (run {Path(source).name})"
    return f"run {Path(source).name} (its best checkpoint)"


def _stops(stops: list, name: str) -> list:
    """A widget's stops, and the field's current value among them when a sweep's best config
    (Sweep page) set one between them: a select-slider refuses a value it does not list."""
    value = st.session_state.get(f"train_{name}")
    return sorted({*stops, value}) if value is not None and value not in stops else stops


def _slider(label: str, name: str, **kwargs: object) -> None:
    lo, hi = field_range(name)
    st.slider(
        label,
        min_value=lo,
        max_value=hi,
        key=f"train_{name}",
        persist_state="session",
        help=DEFAULTS[name].description,
        **kwargs,
    )


@st.cache_data(ttl=30, show_spinner="Checking the data set ...")
def _check_data(config_yaml: str) -> tuple[str, dict[str, dict[str, int]]]:
    """First line of the validation report and the clips per tag and split of what this
    config trains on (after top-N and subset); raises with the reason when nothing is trainable."""
    import yaml

    from autotag.data.prepare import open_dataset

    report, _ = open_dataset(make_config(**yaml.safe_load(config_yaml)))
    return report.summary_lines()[0], report.tag_counts


@st.cache_data(ttl=600, show_spinner=False)
def _estimate(config_yaml: str) -> TimeEstimate:
    """Timed once per model and input on this machine (kept on disk), so only a new setting waits."""
    import yaml

    from autotag.data.prepare import open_dataset
    from autotag.training.estimate import estimate_run

    config = make_config(**yaml.safe_load(config_yaml))
    _, dataset = open_dataset(config)
    return estimate_run(config, dataset.split("train"), dataset.split("valid"))


if "train_model" not in st.session_state:
    _init_state()

st.title("Train a tagging model")
if st.session_state["train_init_from"].startswith(TO_IMPORT):  # before the widgets it sets are drawn
    _import_chosen()
left, right = st.columns([3, 1])
with right:
    st.button(
        "⚡ Quick demo preset",
        on_click=_quick_demo,
        key="train_preset",
        use_container_width=True,
        help="tiny model on the built-in demo set: about 40 s on an idle 2-core CPU, longer on a busy one "
        "(the estimate above the Launch button times this machine as it is now)",
    )

with left:
    st.text_input(
        "Data set folder",
        key="train_data",
        persist_state="session",
        help="Plain folder with tags.csv, MagnaTagATune or MTG-Jamendo layout",
    )
c1, c2, c3 = st.columns(3)
with c1:
    st.selectbox(
        "Model",
        field_choices("model"),
        key="train_model",
        persist_state="session",
        on_change=_apply_model_defaults,
        format_func=lambda m: f"{m} — {SPECS[m].description}",
    )
    st.selectbox("Data format", field_choices("format"), key="train_format", persist_state="session")
with c2:
    st.select_slider(
        "Learning rate (Adam)",
        _stops(LRS, "lr"),
        key="train_lr",
        persist_state="session",
        format_func=lambda v: f"{v:g}",
    )
    st.select_slider("Batch size", _stops(BATCHES, "batch_size"), key="train_batch_size", persist_state="session")
with c3:
    _slider("Max epochs", "max_epochs")
    _slider("Early-stopping patience (epochs)", "patience")
c4, c5, c6 = st.columns(3)
with c4:
    _slider("Mel bands", "n_mels", step=8)
with c5:
    _slider("Chunk length (s)", "chunk_seconds", step=0.01)
with c6:
    st.number_input("Seed", min_value=0, max_value=2**31 - 1, key="train_seed", persist_state="session")
finished = [r for r in list_runs(default_runs_dir()) if r.state is RunState.COMPLETED]
published = {str(r.path): r.status.published for r in finished if r.status.published}
# Published models not imported yet are offered to whoever may make runs: choosing one imports it.
may_import = allowed(actor, "launch", None) is None
to_import = [f"{TO_IMPORT}{name}" for name in CATALOGUE if name not in published.values()] if may_import else []
sources = [SCRATCH, *(str(r.path) for r in finished), *to_import]
if st.session_state["train_init_from"] not in sources:  # its run was deleted meanwhile
    st.session_state["train_init_from"] = SCRATCH
from_scratch = st.session_state["train_init_from"] == SCRATCH
probing = st.session_state["train_transfer"] == "linear-probe"
s1, s2, s3, s4 = st.columns([3, 1, 1, 1])
with s1:
    st.selectbox(
        "Start from",
        sources,
        key="train_init_from",
        persist_state="session",
        on_change=_apply_source,
        format_func=lambda p: _source_label(p, published),
        help="A run of yours or a published model (its backbone's weights, and the rows of the tags both "
        "share); or random weights",
    )
with s2:
    st.selectbox(
        "How it learns",
        field_choices("transfer"),
        key="train_transfer",
        persist_state="session",
        disabled=from_scratch,
        help=DEFAULTS["transfer"].description,
    )
with s3:
    _slider("Epochs with a frozen backbone", "freeze_epochs", disabled=from_scratch or probing)
with s4:
    st.select_slider(
        "Backbone's learning rate (× lr)",
        _stops([0.01, 0.03, 0.1, 0.3, 1.0], "backbone_lr_factor"),
        key="train_backbone_lr_factor",
        persist_state="session",
        disabled=from_scratch or probing,
        help=DEFAULTS["backbone_lr_factor"].description,
    )
lo, hi = field_range("max_minutes")
st.columns([1, 2])[0].number_input(
    "Time budget (minutes)",
    min_value=lo,
    max_value=hi,
    step=5.0,
    key="train_max_minutes",
    persist_state="session",
    placeholder="none: epochs and early stopping decide",
    help=DEFAULTS["max_minutes"].description,
)

with st.expander("Advanced"):
    a1, a2, a3 = st.columns(3)
    with a1:
        st.selectbox("Accelerator", field_choices("accelerator"), key="train_accelerator", persist_state="session")
        _slider("Devices per machine", "devices")
        lo, hi = field_range("num_nodes")
        st.number_input(
            "Machines (nodes)",
            min_value=lo,
            max_value=hi,
            key="train_num_nodes",
            persist_state="session",
            help=DEFAULTS["num_nodes"].description,
        )
        st.selectbox(
            "Strategy",
            field_choices("strategy"),
            key="train_strategy",
            persist_state="session",
            help=DEFAULTS["strategy"].description,
        )
        st.selectbox("Precision", field_choices("precision"), key="train_precision", persist_state="session")
    with a2:
        _slider("DataLoader workers", "num_workers")
        st.select_slider(
            "Weight decay",
            _stops([0.0, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2], "weight_decay"),
            key="train_weight_decay",
            persist_state="session",
            format_func=lambda v: f"{v:g}",
        )
        _slider("Training chunks per clip and epoch", "chunks_per_clip")
        _slider("Chunks per clip in validation/test", "eval_chunks")
    with a3:
        _slider("Top-N tags (MTAT, Jamendo)", "top_n")
        st.selectbox(
            "MTG-Jamendo subset",
            field_choices("jamendo_subset"),
            key="train_jamendo_subset",
            persist_state="session",
        )
        _slider("MTG-Jamendo split", "split_index")
    st.caption("Augmentation of training batches (0 = off)")
    g1, g2, g3, g4, g5 = st.columns(5)
    with g1:
        _slider("Frequency mask (mel bands)", "freq_mask")
    with g2:
        _slider("Time mask (frames)", "time_mask")
    with g3:
        _slider("Random gain (± dB)", "gain_db", step=0.5)
    with g4:
        _slider("Noise: lowest SNR (dB)", "noise_snr_db", step=1.0)
    with g5:
        _slider("Mixup (alpha)", "mixup", step=0.05)
    f1, f2, f3, f4, f5 = st.columns(5)
    with f1:
        st.selectbox(
            "Sample rate (Hz)",
            _stops([8000, 16000, 22050, 32000, 44100, 48000], "sample_rate"),
            key="train_sample_rate",
            persist_state="session",
        )
    with f2:
        st.selectbox(
            "STFT size (samples)", _stops([256, 512, 1024, 2048], "n_fft"), key="train_n_fft", persist_state="session"
        )
    with f3:
        st.selectbox(
            "STFT hop (samples)",
            _stops([128, 160, 256, 512, 1024], "hop_length"),
            key="train_hop_length",
            persist_state="session",
        )
    with f4:
        _slider("Lowest mel frequency (Hz)", "f_min", step=10.0)
    with f5:
        st.selectbox(
            "Loudness",
            field_choices("level"),
            key="train_level",
            persist_state="session",
            format_func=LEVEL_NAMES.get,
            help=DEFAULTS["level"].description,
        )
values = {f: st.session_state[f"train_{f}"] for f in DEFAULTS} | {
    "init_from": st.session_state["train_init_from"] or None
}
try:
    config = make_config(**values)
except ConfigError as exc:
    config = None
    st.error(str(exc).replace("\n  ", "\n\n- "))
else:
    try:
        check_init_source(config)
    except AutotagError as exc:
        config = None
        st.error(str(exc))

name = st.text_input("Run name", key="train_name", persist_state="session", placeholder="e.g. shortchunk-lr1e-3")
if config is not None:
    try:
        summary, tag_counts = _check_data(config.to_yaml())
    except ValueError as exc:
        config = None
        st.error(f"Data set: {exc}")
    else:
        st.caption("Data: " + summary)
        # Drawn even while collapsed: the browser also loads its chart library here, not
        # on the Runs page after Launch, where it held the first curve back by 3 s.
        with st.expander(f"Tags the model will learn: {len(tag_counts.get('train', {}))} (clips per tag)"):
            st.plotly_chart(tag_counts_figure(tag_counts), key="train_tag_counts")
estimate_slot = st.empty()  # filled last: timing a new model's steps takes seconds, the button comes first

cluster_only = config is not None and config.num_nodes > 1
if cluster_only:
    st.info(
        f"A run on {config.num_nodes} machines is started by the cluster's scheduler, not from here. "
        "Download its SLURM job script (one task per GPU; Lightning takes the ranks from SLURM), "
        "copy it to the cluster and submit it with `sbatch`. The README has the torchrun equivalent."
    )
    label = sanitize_name(name or config.model)
    st.download_button(
        "Download SLURM job script",
        sbatch_script(config, label, PROJECT_ROOT, config.num_nodes, config.devices, source="the Train page"),
        file_name=f"{label}.sbatch",
        mime="text/x-shellscript",
        icon=":material/download:",
        key="train_sbatch",
    )
why_not = allowed(actor, "launch", None)
if st.button(
    "Launch training",
    icon=":material/rocket_launch:",
    type="primary",
    disabled=config is None or cluster_only or why_not is not None,
    help=why_not,
    key="train_launch",
):
    # Same config from the same session within seconds = a double click: one run, not two.
    key = config.to_yaml() + st.session_state["train_session"] + name
    token = hashlib.sha256(key.encode()).hexdigest()[:16]
    try:
        run_dir = launch(config, name=name or None, token=token, actor=actor)
    except (AutotagError, AccessDenied) as exc:
        st.error(str(exc))
    else:
        st.session_state["runs_selected"] = [run_dir.name]
        st.switch_page("pages/runs.py")

guess: TimeEstimate | None = None
if config is not None and not cluster_only and why_not is None:  # it trains steps: not for viewers
    try:
        with estimate_slot, st.spinner("Timing a few training steps on this machine ..."):
            guess = _estimate(config.to_yaml())
    except EstimateError as exc:
        estimate_slot.warning(f"No training time estimate: {exc}")
if config is not None and guess is not None:
    where = "this CPU" if guess.device == "cpu" else "this GPU"
    if config.transfer == "linear-probe":
        text = (
            f"Linear probe on {where}: about {human_duration(guess.run_s)} to embed every clip once with the "
            "frozen network (a later probe of the same model on the same clips reuses them); the output layer "
            "then trains in seconds."
        )
    else:
        budget = config.max_minutes and config.max_minutes * 60 < guess.epoch_s * config.max_epochs
        end = (
            f"the time budget ends it after {human_duration(guess.run_s)}, then the best model is tested"
            if budget
            else f"up to {human_duration(guess.run_s)} for {counted(config.max_epochs, 'epoch')}; "
            "early stopping often ends sooner"
        )
        text = (
            f"Training time on {where}: about {human_duration(guess.epoch_s)} per epoch "
            f"({guess.steps_per_epoch} steps of {config.batch_size} chunks, and validation), {end}."
        )
    text += " The first run on a data set also decodes its audio once."
    (estimate_slot.warning if guess.long else estimate_slot.caption)(
        text + (" The tiny model, fewer epochs, a time budget or a GPU make it shorter." if guess.long else "")
    )
