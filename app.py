"""autotag dashboard: navigation over pages/ and a sidebar with the runs folder.

Start with `bash scripts/dashboard.sh` (or `streamlit run app.py`). Pages collect input,
call the `autotag` library and render its results (no page computes anything of its own);
training runs in its own process, so reloading or closing the browser never stops it.
"""

from __future__ import annotations

import importlib
import threading

import streamlit as st

from autotag.runs.manager import warm_up
from autotag.store.run_folder import default_runs_dir
from autotag.ui.auth import gate, signed_in
from autotag.ui.sidebar import counts_now, runs_sidebar


@st.cache_resource(show_spinner=False)
def _preload_tagging() -> threading.Thread:
    """Import torch and the tagger once per server, in the background, after the first page.

    The first tag then costs only the model load: importing torch in the page that
    tags took 2 of the 3 s of a first tag on a 2-core laptop. It runs after a page is
    drawn, so the dashboard's start-up never waits for it.
    """
    thread = threading.Thread(target=importlib.import_module, args=("autotag.serving.tagger",), daemon=True)
    thread.start()
    return thread


st.set_page_config(page_title="autotag", page_icon=":material/sell:", layout="wide")

# A server whose main script has a pages/ folder next to it runs Streamlit's older multipage
# layout until a script calls st.navigation: a fresh server's first request to /runs runs
# pages/runs.py alone, without this script. Each page then finds no "_app_nav" set below,
# runs this script in its place (which shows the page the URL names) and stops.
TRAIN = st.Page("pages/train.py", title="Train", icon=":material/model_training:", url_path="train")
RUNS = st.Page("pages/runs.py", title="Runs", icon=":material/monitoring:", url_path="runs")
SWEEP = st.Page("pages/sweep.py", title="Sweep", icon=":material/tune:", url_path="sweep")
pages = [
    TRAIN,
    RUNS,
    SWEEP,
    st.Page("pages/tag.py", title="Tag", icon=":material/sell:", url_path="tag"),
    st.Page("pages/library.py", title="Library", icon=":material/library_music:", url_path="library"),
    st.Page("pages/data.py", title="Data", icon=":material/folder_open:", url_path="data"),
]
# Streamlit serves its default page at "/" only (the default page's url_path is ignored), so a
# default Train page made /train "Page not found". "/" is a hidden page of its own that hands
# over to Train at /train: every page has its own URL, and the sidebar marks the one shown.
HOME = st.Page(lambda: st.switch_page(TRAIN), title="autotag", url_path="home", default=True, visibility="hidden")
nav = st.navigation([*pages, HOME], position="sidebar" if signed_in() else "hidden")
if nav is HOME:
    nav.run()  # switches to Train before anything is drawn: "/" costs one short extra run
gate()  # with login configured (`autotag.ui.auth`): only a login button until someone with a role logs in
st.session_state["_app_nav"] = True  # the pages check it (see above); set only past the gate


runs_dir = default_runs_dir()
# The counts are live on every page, with one refresh clock a page (`ui.sidebar`): the Runs
# page's live part (when it has runs) and the Sweep page's rerun the whole page when they
# change; elsewhere the sidebar looks again by itself.
counts = counts_now(runs_dir, max_age=0)  # a whole page follows a user's action: read now
runs_sidebar(runs_dir, counts, live=not (nav is SWEEP or (nav is RUNS and counts.runs)), rerun_page=nav is RUNS)

nav.run()
warm_up(runs_dir)  # after the page is drawn: a pre-warmed trainer makes the next Launch start at once
_preload_tagging()
