"""Library: a tagged library (`tag --out lib.sqlite`) filtered, sorted and paged, a clip played
with its taggram, more like this, and the selection as CSV."""

from __future__ import annotations

import runpy
from pathlib import Path

import pandas as pd
import streamlit as st

from autotag.errors import AutotagError
from autotag.library.browse import (
    OUTCOMES,
    Facts,
    LibraryFileError,
    Selection,
    changed_since_tagged,
    file_row,
    find_libraries,
    library_path,
    page,
    read_clip,
    read_facts,
    selection_csv,
    similar,
)
from autotag.library.job import LibraryJob
from autotag.library.store import FAILED
from autotag.paths import absolute
from autotag.store.run_folder import default_runs_dir
from autotag.ui.auth import acting
from autotag.ui.charts import taggram_figure, top_tags_figure
from autotag.ui.library_job import job_panel, start_form

if "_app_nav" not in st.session_state:  # run alone by Streamlit's older pages/ layout: see app.py
    runpy.run_path(str(Path(__file__).parents[1] / "app.py"), run_name="__main__")
    st.stop()
actor = acting()  # the gate again: a page run alone (see app.py) by a session with nobody logged in stops

#: Rows a page of the table shows.
PAGE_ROWS = 50
#: Neighbours "more like this" lists.
NEIGHBOURS = 10
SORT_NAMES = {"path": "path", "duration": "duration", "probability": "probability of a tag"}
MIME = {".wav": "audio/wav", ".flac": "audio/flac", ".ogg": "audio/ogg", ".mp3": "audio/mpeg"}


def _stamp(path: Path) -> tuple:
    """Changes whenever the library does: its file's and its WAL's size and time (`tag` writes the WAL)."""
    stamp = []
    for name in (path, path.with_name(path.name + "-wal")):
        try:
            info = name.stat()
            stamp.append((info.st_size, info.st_mtime_ns))
        except OSError:
            stamp.append(None)
    return tuple(stamp)


@st.cache_data(max_entries=16, show_spinner=False)
def _facts(path: str, stamp: tuple) -> Facts:
    """Once per state of the file: the counts by outcome scan the files table."""
    return read_facts(path)


@st.cache_data(max_entries=32, show_spinner="Comparing with every track ...")
def _similar(path: str, stamp: tuple, file_id: int) -> list:
    return similar(path, file_id, NEIGHBOURS)


@st.cache_resource(max_entries=2, show_spinner="Loading the model that tagged the library ...")
def _tagger(run: str, checkpoint: str, sha256: str, _library: Facts):  # noqa: ANN202 - (Tagger, note)
    """Once per model: keyed by the run, checkpoint and digest the library recorded."""
    from autotag.library.browse import clip_tagger

    return clip_tagger(_library)


@st.cache_data(max_entries=16, show_spinner="Tagging the clip chunk by chunk ...")
def _taggram(run: str, checkpoint: str, sha256: str, _library: Facts, name: str, data: bytes):  # noqa: ANN202
    """The clip's Prediction, decoded in a limited child process as an upload is."""
    from autotag.audio.sandbox import decode_untrusted

    tagger, _ = _tagger(run, checkpoint, sha256, _library)
    return tagger.predict(decode_untrusted(data, tagger.sample_rate, name=name))


def _choose_library() -> str:
    """The library file as typed, or the newest found beside the runs folder or here ("": none)."""
    folders = list(dict.fromkeys([absolute(default_runs_dir()).parent, absolute(".")]))
    if "library_path" not in st.session_state:  # the first visit's default; the user's choice stays after
        found = find_libraries(*folders)
        st.session_state["library_path"] = str(found[0]) if found else ""
    text = st.text_input(
        "Library file",
        key="library_path",
        placeholder="lib.sqlite, as `python -m autotag tag --run RUN DIR --recursive --out lib.sqlite` wrote it",
    )
    where = " and ".join(f"`{f}`" for f in folders)
    if not text.strip():
        st.info(
            f"No library found in {where}. Tag a folder below, or from a terminal and give its file here: "
            "`python -m autotag tag --run RUN DIR --recursive --out lib.sqlite`",
            icon=":material/library_music:",
        )
        return ""
    st.caption(f"Looked for `*.sqlite`, `*.sqlite3` and `*.db` libraries in {where}; any path works.")
    return text.strip()


def _header(facts: Facts, job_running: bool) -> None:
    run = Path(facts.run).name or "?"
    st.markdown(
        f"**{facts.path.name}** · tagged by run `{run}` ({facts.checkpoint}) · created {facts.created or '?'}  \n"
        f"{facts.files:,} files: **{facts.tagged:,} tagged**, {facts.silent:,} silent, {facts.failed:,} failed · "
        f"{len(facts.labels)} tags: {', '.join(facts.labels)}"
    )
    if job_running:
        st.info(
            "Being tagged in the background: shown are the rows written when the page was drawn; "
            "all show when the job ends, more each time the page is rerun (R).",
            icon=":material/hourglass_top:",
        )
    elif facts.writing:
        st.info(
            "`autotag tag` is writing this library (or ended while a reader held it): shown are the rows "
            "committed so far. Rerun the page (R) to see more.",
            icon=":material/hourglass_top:",
        )


def _filters(facts: Facts) -> Selection:
    search_col, outcome_col = st.columns([3, 2])
    text = search_col.text_input("Search paths", key="library_search", placeholder="part of a file's path")
    outcomes = outcome_col.multiselect("Outcome", OUTCOMES, key="library_outcomes", placeholder="all")
    tag_col, sort_col, by_col, order_col = st.columns([3, 1.3, 1.3, 1], vertical_alignment="bottom")
    chosen = tag_col.multiselect(
        "Has the tags", facts.labels, key="library_tags", placeholder="any", help="each at or above its minimum"
    )
    sort = sort_col.selectbox("Sort by", list(SORT_NAMES), format_func=SORT_NAMES.get, key="library_sort")
    sort_tag = None
    if sort == "probability":
        sort_tag = by_col.selectbox("Tag", facts.labels, key="library_sort_tag")
    descending = order_col.toggle("Descending", value=False, key="library_descending")
    minimums = []
    if chosen:
        cols = st.columns(4)
        for i, tag in enumerate(chosen):
            minimums.append(
                cols[i % len(cols)].slider(
                    f"{tag}: at least",
                    0.0,
                    1.0,
                    facts.thresholds[tag],
                    0.01,
                    key=f"library_min_{tag}",
                    help=f"Its threshold in this library is {facts.thresholds[tag]:.2f}: files at or above it "
                    "have the tag.",
                )
            )
    return Selection(
        tags=tuple(zip(chosen, minimums)),
        text=text.strip(),
        outcomes=tuple(outcomes),
        sort=sort,
        sort_tag=sort_tag,
        descending=descending,
    )


def _table(path: Path, selection: Selection) -> list[dict]:
    """The chosen page of rows as a table, with "rows a-b of N"; returns the page's rows."""
    shown = page(path, selection, st.session_state.get("library_page", 1), PAGE_ROWS)  # clamped: filters shrink it
    if shown.pages > 1:
        st.session_state["library_page"] = shown.number
        page_col, count_col = st.columns([1, 5], vertical_alignment="bottom")
        page_col.number_input("Page", min_value=1, max_value=shown.pages, step=1, key="library_page")
        count_col.caption(shown.caption())
    elif shown.rows:
        st.session_state.pop("library_page", None)
        st.caption(shown.caption())
    if not shown.rows:
        st.caption("No file matches the search and filters.")
        return []
    table = pd.DataFrame(
        {
            "file": [Path(r["path"]).name for r in shown.rows],
            "folder": [str(Path(r["path"]).parent) for r in shown.rows],
            "outcome": [r["outcome"] for r in shown.rows],
            "duration (s)": [r["duration"] for r in shown.rows],
            "tags": [", ".join(r["tags"]) for r in shown.rows],
            **{f"p({t})": [r["probabilities"].get(t) for r in shown.rows] for t in shown.columns},
        }
    )
    if any(r["error"] for r in shown.rows):
        table["error"] = [r["error"] or "" for r in shown.rows]
    config = {
        "duration (s)": st.column_config.NumberColumn(format="%.1f"),
        **{f"p({t})": st.column_config.ProgressColumn(format="%.3f", min_value=0, max_value=1) for t in shown.columns},
    }
    st.dataframe(table, hide_index=True, column_config=config)
    return shown.rows


def _clip(path: Path, facts: Facts, stamp: tuple, rows: list[dict]) -> None:
    """A clip of the page: its player, stored tags, taggram (behind a toggle) and more like this."""
    ids = [r["id"] for r in rows]
    names = {r["id"]: r["path"] for r in rows}
    if st.session_state.get("library_clip") not in [None, *ids]:
        st.session_state["library_clip"] = None  # the filters moved it off the page
    chosen = st.selectbox(
        "Play a clip of this page",
        [None, *ids],
        format_func=lambda i: "(choose one)" if i is None else names[i],
        key="library_clip",
    )
    if chosen is None:
        return
    row = file_row(path, chosen)
    if row is None:
        st.warning("This file's row is gone from the library (tagged again, or the library was replaced).")
        return
    st.subheader(Path(row["path"]).name)
    st.caption(f"`{row['path']}`" + (f" · {row['duration']:.1f} s" if row["duration"] else ""))
    try:
        data = read_clip(row)
    except LibraryFileError as exc:
        st.warning(str(exc), icon=":material/music_off:")
        data = None
    else:
        st.audio(data, format=MIME.get(Path(row["path"]).suffix.lower(), "audio/wav"))
        if changed_since_tagged(row):
            st.caption("The file has changed since it was tagged: its stored tags are those of the file as it was.")
    if row["outcome"] == FAILED:
        st.error(f"Not tagged: {row['error']}")
        return
    if row["outcome"] == "silent":
        st.info("Silent throughout: no tags, and nothing to compare it with.", icon=":material/volume_off:")
        return
    left, right = st.columns([2, 3])
    with left:
        st.markdown("**Tags:** " + (", ".join(f"`{t}`" for t in row["tags"]) or "none above threshold"))
        stored = {t: p for t, p in row["probabilities"].items() if p is not None}
        st.plotly_chart(top_tags_figure(stored, facts.thresholds), key="library_top")
        st.caption("As stored in the library. Blue: at or above the tag's threshold (the black tick).")
    with right:
        if data is not None and st.toggle(
            f"Taggram: tag it again with run `{Path(facts.run).name}`, chunk by chunk",
            key="library_taggram",
            help="Loads the model that tagged the library (seconds, the first time) and scores each chunk.",
        ):
            try:
                tagger, note = _tagger(facts.run, facts.checkpoint, facts.checkpoint_sha256, facts)
                pred = _taggram(
                    facts.run, facts.checkpoint, facts.checkpoint_sha256, facts, Path(row["path"]).name, data
                )
            except AutotagError as exc:  # the run is gone, no checkpoint loads, the audio is refused
                st.error(str(exc))
            else:
                if note:
                    st.caption(note)
                seconds = tagger.chunk_samples / tagger.sample_rate
                st.plotly_chart(
                    taggram_figure(pred.labels, pred.taggram, pred.chunk_starts, seconds), key="library_gram"
                )
    if st.toggle(
        "More like this", key="library_similar", help="The nearest tracks by cosine similarity of their embeddings"
    ):
        _more_like_this(path, stamp, row)


def _more_like_this(path: Path, stamp: tuple, row: dict) -> None:
    near = _similar(str(path), stamp, row["id"])
    if not near:
        st.caption("No other track has an embedding to compare with.")
        return
    st.dataframe(
        pd.DataFrame(
            {
                "similarity": [n.similarity for n in near],
                "file": [Path(n.path).name for n in near],
                "tags": [", ".join(n.tags) for n in near],
                "folder": [str(Path(n.path).parent) for n in near],
            }
        ),
        hide_index=True,
        column_config={"similarity": st.column_config.NumberColumn(format="%.3f")},
    )
    paths = {n.id: n.path for n in near}
    hear = st.selectbox(
        "Hear one of them",
        [None, *paths],
        format_func=lambda i: "(choose one)" if i is None else Path(paths[i]).name,
        key="library_hear",
    )
    if hear is not None:
        try:
            st.audio(read_clip({"path": paths[hear]}), format=MIME.get(Path(paths[hear]).suffix.lower(), "audio/wav"))
        except LibraryFileError as exc:
            st.warning(str(exc), icon=":material/music_off:")


st.title("Browse a tagged library")
given = _choose_library()
start_form(actor, expanded=not given)
if not given:
    st.stop()
try:
    library = library_path(given)
    tagging = LibraryJob(library)
    state = tagging.state() if tagging.exists() else None
    if state is not None:
        job_panel(library, state)
        if state.active and not library.exists():
            st.caption("The library file appears when its first file is tagged.")
            st.stop()
    stamp = _stamp(library)
    facts = _facts(str(library), stamp)
    _header(facts, state is not None and state.active)
    selection = _filters(facts)
    rows = _table(library, selection)
    st.download_button(
        "Download the selection (CSV)",
        data=lambda: selection_csv(library, selection),  # built on the click, from SQL
        file_name=f"{library.stem}-selection.csv",
        mime="text/csv",
        key="library_csv",
        on_click="ignore",
        icon=":material/download:",
    )
    if rows:
        st.divider()
        _clip(library, facts, stamp, rows)
except LibraryFileError as exc:  # not a library, damaged, replaced between two reruns
    st.error(str(exc))
