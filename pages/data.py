"""Data: a data set's validation report, tag statistics, and clips to listen to."""

from __future__ import annotations

import runpy
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from autotag.charts import cooccurrence_figure, spectrogram_figure, tag_counts_figure
from autotag.data.demo import NOTES_FILE, default_demo_dir

if "_app_nav" not in st.session_state:  # run alone by Streamlit's older pages/ layout: see app.py
    runpy.run_path(str(Path(__file__).parents[1] / "app.py"), run_name="__main__")
    st.stop()


@st.cache_data(ttl=60, show_spinner="Reading the data set ...")
def _open(path: str, fmt: str):  # noqa: ANN202 - (report, dataset)
    from autotag.config import make_config
    from autotag.data.prepare import open_dataset

    return open_dataset(make_config(data=path, format=fmt, model="tiny"))


st.title("Data sets")
c1, c2 = st.columns([4, 1])
path = c1.text_input("Data set folder", value=str(default_demo_dir()), key="data_path", persist_state="session")
fmt = c2.selectbox("Format", ["auto", "csv", "mtat", "jamendo"], key="data_format", persist_state="session")
try:
    report, dataset = _open(path, fmt)
except ValueError as exc:
    st.error(str(exc))
    st.stop()

lines = report.summary_lines()
st.success(f"{dataset.format} data set · {len(dataset.labels)} tags · {lines[0]}")
for line in lines[1:]:
    st.warning(line)
if (dataset.root / NOTES_FILE).is_file():  # what made a demo set: real instruments, or the synthetic fallback and why
    st.info((dataset.root / NOTES_FILE).read_text(encoding="utf-8", errors="replace"))
m = st.columns(3)
for col, split in zip(m, ("train", "valid", "test")):
    col.metric(f"{split} clips", report.split_sizes.get(split, 0))

left, right = st.columns(2)
with left:
    st.subheader("Clips per tag")
    st.plotly_chart(tag_counts_figure(report.tag_counts), key="data_counts")
with right:
    st.subheader("Tag co-occurrence")
    col = {t: j for j, t in enumerate(dataset.labels)}
    targets = np.zeros((len(dataset.clips), len(dataset.labels)))
    for i, clip in enumerate(dataset.clips):
        targets[i, [col[t] for t in clip.tags]] = 1
    st.plotly_chart(cooccurrence_figure(dataset.labels, targets), key="data_cooc")

st.subheader("Listen")
clips = dataset.clips[:500]
pick = st.selectbox(
    "Clip",
    range(len(clips)),
    key="data_clip",
    format_func=lambda i: f"{clips[i].id}  [{clips[i].split}]  {', '.join(clips[i].tags)}",
)
clip = clips[pick]
st.audio(str(clip.path))
try:
    from autotag.audio.logmel import file_logmel

    settings = {"sample_rate": 16000, "n_fft": 512, "hop_length": 256, "n_mels": 128, "f_min": 0.0, "f_max": 8000.0}
    st.plotly_chart(spectrogram_figure(file_logmel(clip.path, settings), 256 / 16000), key="data_spec")
except ValueError as exc:
    st.error(str(exc))
st.dataframe(pd.DataFrame({"tag": list(clip.tags)}), hide_index=True)
