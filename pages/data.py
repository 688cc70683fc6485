"""Data: a data set's validation report, tag statistics, and clips to listen to."""

from __future__ import annotations

import runpy
from pathlib import Path

import pandas as pd
import streamlit as st

from autotag.config import field_choices, make_config
from autotag.data.demo import default_demo_dir, source_note
from autotag.ui.auth import acting
from autotag.ui.charts import cooccurrence_figure, spectrogram_figure, tag_counts_figure

if "_app_nav" not in st.session_state:  # run alone by Streamlit's older pages/ layout: see app.py
    runpy.run_path(str(Path(__file__).parents[1] / "app.py"), run_name="__main__")
    st.stop()
acting()  # the gate again: a page run alone (see app.py) by a session with nobody logged in stops


@st.cache_data(ttl=60, show_spinner="Reading the data set ...")
def _open(path: str, fmt: str):  # noqa: ANN202 - (report, dataset)
    from autotag.data.prepare import open_dataset

    return open_dataset(make_config(data=path, format=fmt, model="tiny"))


st.title("Data sets")
c1, c2 = st.columns([4, 1])
path = c1.text_input("Data set folder", value=str(default_demo_dir()), key="data_path", persist_state="session")
fmt = c2.selectbox("Format", field_choices("format"), key="data_format", persist_state="session")
try:
    report, dataset = _open(path, fmt)
except ValueError as exc:
    st.error(str(exc))
    st.stop()

lines = report.summary_lines()
st.success(f"{dataset.format} data set · {len(dataset.labels)} tags · {lines[0]}")
for line in lines[1:]:
    st.warning(line)
note = source_note(dataset.root)
if note:
    st.info(note)
m = st.columns(3)
for col, split in zip(m, ("train", "valid", "test")):
    col.metric(f"{split} clips", report.split_sizes.get(split, 0))

left, right = st.columns(2)
with left:
    st.subheader("Clips per tag")
    st.plotly_chart(tag_counts_figure(report.tag_counts), key="data_counts")
with right:
    st.subheader("Tag co-occurrence")
    st.plotly_chart(cooccurrence_figure(dataset.labels, dataset.targets()), key="data_cooc")

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

    features = make_config(data=path)  # the features a model trained with the schema's defaults sees
    mels = file_logmel(clip.path, features.feature_settings())
    st.plotly_chart(spectrogram_figure(mels, features.frame_seconds), key="data_spec")
except ValueError as exc:
    st.error(str(exc))
st.dataframe(pd.DataFrame({"tag": list(clip.tags)}), hide_index=True)
