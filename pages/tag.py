"""Tag: score uploaded or recorded clips with a run's best checkpoint, and hear them perturbed."""

from __future__ import annotations

import runpy
from pathlib import Path

import pandas as pd
import streamlit as st

from autotag.access import AccessDenied, allowed
from autotag.audio.decode import AUDIO_EXTENSIONS, AudioError
from autotag.audio.sandbox import decode_untrusted, prestart
from autotag.errors import AutotagError
from autotag.runs import manager
from autotag.runs.table import best_run
from autotag.serving.decide import decision_thresholds, read_tuning, tags_above
from autotag.store.checkpoints import checkpoint_files
from autotag.store.run_folder import RunError, RunFolder, default_runs_dir
from autotag.ui.auth import acting
from autotag.ui.charts import taggram_figure, top_tags_figure

if "_app_nav" not in st.session_state:  # run alone by Streamlit's older pages/ layout: see app.py
    runpy.run_path(str(Path(__file__).parents[1] / "app.py"), run_name="__main__")
    st.stop()
acting()  # the gate again: a page run alone (see app.py) by a session with nobody logged in stops


@st.cache_resource(max_entries=4, show_spinner="Loading the model ...")
def _tagger(run_path: str, stamp: tuple):  # noqa: ANN202 - autotag.serving.tagger.Tagger (imports torch lazily)
    """Loaded once per run and checkpoint state (`stamp` changes when a checkpoint does)."""
    from autotag.serving.tagger import Tagger

    return Tagger.load(run_path)


@st.cache_data(max_entries=64, show_spinner="Tagging ...")
def _predict(run_path: str, stamp: tuple, name: str, data: bytes):  # noqa: ANN202 - autotag.serving.tagger.Prediction
    """Each clip is tagged once per model: reruns (a threshold moved) reuse the result.

    Uploads are decoded in a limited child process, so a hostile file cannot hurt the server.
    """
    tagger = _tagger(run_path, stamp)
    return tagger.predict(decode_untrusted(data, tagger.sample_rate, name=name))


#: Seconds of an upload that "hear it perturbed" plays and tags (its waves are kept in memory).
HEAR_S = 60


@st.cache_data(max_entries=4, show_spinner="Perturbing and tagging ...")
def _perturbed(run_path: str, stamp: tuple, name: str, data: bytes, perturbation: str) -> tuple:
    """The clip's first HEAR_S s tagged as it is, and (label, wave, Prediction) per strength of `perturbation`."""
    import numpy as np

    from autotag.audio.perturb import get, perturb

    tagger = _tagger(run_path, stamp)
    wave = decode_untrusted(data, tagger.sample_rate, name=name)[: HEAR_S * tagger.sample_rate]
    kind = get(perturbation)
    versions = []
    for i, strength in enumerate(kind.strengths):
        heard = perturb(wave, tagger.sample_rate, perturbation, strength, np.random.default_rng(i))
        versions.append((kind.label(strength), heard, tagger.predict(heard)))
    return tagger.predict(wave), versions


def _hear_perturbed(  # the page's state, passed in rather than read from globals
    run_path: str, stamp: tuple, sample_rate: int, name: str, data: bytes, thresholds: dict[str, float]
) -> None:
    """The clip's tags under one perturbation at each strength, with players to hear what the model heard.

    Behind a toggle, not an expander: an expander's body runs even when closed, and this costs
    a decode and a forward pass per strength.
    """
    from autotag.audio.perturb import PERTURBATIONS

    if not st.toggle("How its tags hold up: hear it perturbed", key=f"tag_hear_{name}"):
        return
    pick = st.selectbox(
        "Perturbation",
        list(PERTURBATIONS),
        format_func=lambda n: f"{n}: {PERTURBATIONS[n].about}",
        key=f"tag_perturb_{name}",
    )
    plain, versions = _perturbed(run_path, stamp, name, data, pick)
    clean = tags_above(plain, thresholds)
    st.caption(
        f"The first {HEAR_S} s as they are: " + (", ".join(clean) or "no tag") + ". Each strength below: its tags "
        "and what changed."
    )
    for label, wave, heard in versions:
        tags = tags_above(heard, thresholds)
        lost, gained = [t for t in clean if t not in tags], [t for t in tags if t not in clean]
        change = [f"lost {', '.join(lost)}"] if lost else []
        change += [f"gained {', '.join(gained)}"] if gained else []
        a, b = st.columns([2, 3])
        a.audio(wave, sample_rate=sample_rate)
        top = ", ".join(f"{t} {p:.2f}" for t, p in heard.top(3))
        shown = ", ".join(f"`{t}`" for t in tags) or "no tag"
        b.markdown(f"**{label}**: {shown}  \n{'; '.join(change) or 'no change'} · top: {top}")


def _offer_published() -> None:
    """One click: the catalogue's first choice imported as a run (mirror, cache or download), then tagging."""
    from autotag.pretrained.catalogue import FIRST_CHOICE, published
    from autotag.pretrained.importer import get

    entry = published(FIRST_CHOICE)
    why_not = allowed(acting(), "launch", None)
    if st.button(
        "Tag with a published model",
        icon=":material/library_music:",
        type="primary",
        key="tag_published",
        disabled=why_not is not None,
        help=why_not or f"{entry.name}: {entry.network.upper()} trained on {entry.trained_on}; {entry.credit}",
    ):
        try:
            with st.spinner(f"Getting {entry.name} ({entry.size / 1e6:.1f} MB) ..."):
                get(entry.name, actor=acting())
        except (AutotagError, AccessDenied) as exc:  # offline without a mirror, not the published file, a role
            st.error(str(exc))
            return
        st.rerun()


st.title("Tag your audio")
runs = [r for r in manager.list_runs(default_runs_dir()) if RunFolder(r.path).checkpoints.is_dir()]
if not runs:
    st.info(
        "No model yet. Tag with a published one now: real music tags (guitar, classical, rock, techno, "
        "female vocal, ...) before you train anything. Or start the quick demo on the Runs page."
    )
    _offer_published()
    st.page_link("pages/runs.py", label="Go to Runs", icon=":material/monitoring:")
    st.stop()

prestart()  # the decoder of the next upload starts now, while the model loads or the user picks a file
best = best_run(runs)
names = [r.name for r in runs]
labels = {
    r.name: f"{r.name} · {'published' if r.status.published else r.state}"
    + (f" · test ROC-AUC {r.status.test_roc_auc:.3f}" if r.status.test_roc_auc else "")
    for r in runs
}
run_name = st.selectbox(
    "Model (run)",
    names,
    index=names.index(best.name) if best else 0,
    key="tag_run",
    persist_state="session",
    format_func=labels.get,
)
run = next(r for r in runs if r.name == run_name)

tuning = read_tuning(run.path)
modes = (["Per-tag thresholds tuned on validation"] if tuning else []) + ["One threshold for all tags"]
mode = st.radio(
    "Decide tags with",
    modes,
    key="tag_mode",
    persist_state="session",
    horizontal=True,
    help="Tuned: for each tag, the cut that tags as many validation clips as carry the tag (precision = recall), "
    "drawn toward one shared cut when the tag has few validation positives (All tags shows how many).",
)
cut = (
    st.slider("Threshold", 0.0, 1.0, 0.5, 0.01, key="tag_threshold", persist_state="session")
    if mode.startswith("One")
    else None
)
positives = tuning.positives if tuning and cut is None else {}
if tuning and tuning.held_out and cut is None:
    precision, recall, held_out = tuning.held_out
    st.caption(
        f"On the {held_out} test clips, which had no say in them, these thresholds tagged with precision "
        f"{precision:.2f} and recall {recall:.2f}: expect less on sounds unlike the training set."
    )

up, rec = st.columns([3, 2])
with up:
    uploads = st.file_uploader(
        "Upload clips", type=[e.lstrip(".") for e in AUDIO_EXTENSIONS], accept_multiple_files=True, key="tag_upload"
    )
with rec:
    recording = st.audio_input("Or record from the microphone", key="tag_record")

# The model loads only now, below the uploader: on the first visit (seconds: torch is imported)
# the user can already pick a file; an upload made meanwhile is tagged as soon as it is loaded.
try:
    stamp = tuple((c.path.name, c.mtime_ns) for c in checkpoint_files(run.path))  # stat'd as listed: never raced
    tagger = _tagger(str(run.path), stamp)
except RunError as exc:
    st.error(str(exc))
    st.stop()
if tagger.note:
    st.warning(f"The best checkpoint does not load: {tagger.note}")
thresholds = decision_thresholds(tagger.labels, tuning.thresholds if tuning else None, cut)

clips = [(u.name, u.getvalue()) for u in uploads or []]
if recording is not None:
    clips.append(("recording.wav", recording.getvalue()))
if not clips:
    st.caption(f"Tags: {', '.join(tagger.labels)}")
    st.stop()

results = {}
for name, data in clips:
    st.divider()
    st.subheader(name)
    try:
        pred = _predict(str(run.path), stamp, name, data)
    except AudioError as exc:
        st.error(str(exc))
        continue
    results[name] = pred
    st.audio(data)
    if pred.silent:
        st.info("This clip is silent throughout: there is nothing to tag.", icon=":material/volume_off:")
        continue
    on = tags_above(pred, thresholds)
    st.markdown("**Tags:** " + (", ".join(f"`{t}`" for t in on) if on else "none above threshold"))
    c1, c2 = st.columns([2, 3])
    with c1:
        st.plotly_chart(top_tags_figure(pred.clip, thresholds), key=f"tag_top_{name}")
        st.caption("Blue: at or above the tag's threshold (the black tick); grey: below it.")
    with c2:
        st.plotly_chart(
            taggram_figure(pred.labels, pred.taggram, pred.chunk_starts, tagger.chunk_samples / tagger.sample_rate),
            key=f"tag_gram_{name}",
        )
    _hear_perturbed(str(run.path), stamp, tagger.sample_rate, name, data, thresholds)
    with st.expander("All tags"):
        st.dataframe(
            pd.DataFrame(
                {
                    "tag": pred.labels,
                    "probability": [pred.clip[t] for t in pred.labels],
                    "threshold": [thresholds[t] for t in pred.labels],
                    "tagged": [t in on for t in pred.labels],
                    "validation positives": [positives.get(t) for t in pred.labels],
                }
            ).sort_values("probability", ascending=False),
            hide_index=True,
        )

if results:
    from autotag.serving.render import render_predictions

    d1, d2, _ = st.columns([1, 1, 3])
    d1.download_button("Download CSV", render_predictions(results, "csv"), "tags.csv", "text/csv", key="tag_csv")
    d2.download_button(
        "Download JSON",
        render_predictions(results, "json", taggram=True),
        "tags.json",
        "application/json",
        key="tag_json",
    )

prestart()  # the page is drawn; the worker this upload used is gone: one waits for the next upload
