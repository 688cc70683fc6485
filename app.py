"""autotag dashboard entry point.

For now one page: where the data and runs are, and every run's state read from its
folder. The Data, Train, Runs and Tag pages build on the same library calls.
"""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from autotag.runs import default_runs_dir, read_status

DEMO_DIR = Path(os.environ.get("AUTOTAG_DEMO_DIR", "data/demo"))

st.set_page_config(page_title="autotag", page_icon="🏷️", layout="wide")
st.title("autotag")
st.caption("Train multi-label music auto-tagging models and tag your own audio.")

runs_dir = default_runs_dir()
col_data, col_runs = st.columns(2)
with col_data:
    st.subheader("Data")
    if (DEMO_DIR / "tags.csv").is_file():
        clips = sum(1 for _ in (DEMO_DIR / "tags.csv").open()) - 1
        st.write(f"Built-in demo data set: `{DEMO_DIR.resolve()}` ({clips} clips).")
    else:
        st.warning(f"No demo data set in `{DEMO_DIR}`; make one with `python -m autotag demo-data {DEMO_DIR}`.")
with col_runs:
    st.subheader("Runs")
    runs = sorted((p for p in runs_dir.glob("*/config.yaml")), reverse=True) if runs_dir.is_dir() else []
    if runs:
        rows = []
        for cfg in runs:
            status = read_status(cfg.parent)
            rows.append(
                {
                    "run": cfg.parent.name,
                    "state": status.get("state", "unknown"),
                    "best val_loss": status.get("best_val_loss"),
                    "test ROC-AUC": status.get("test_roc_auc"),
                }
            )
        st.dataframe(rows, hide_index=True)
    else:
        st.info(f"No runs yet in `{runs_dir.resolve()}`.")

st.subheader("Train and tag from a terminal")
st.code(
    f"python -m autotag fit --data {DEMO_DIR} --model tiny --max-epochs 20\n"
    "python -m autotag tag --run runs/<run folder> my_song.mp3",
    language="bash",
)
