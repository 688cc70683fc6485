"""The sidebar's runs folder and its counts ("N runs · A training (limit L) · Q queued"), live on every page.

A page has at most one refresh clock (`ui.ticker`): with two, the Runs page's live part
missed its catch-up when a hidden tab was shown again. So:

- a page whose own live part keeps the counts fresh (it reruns the whole page when they
  change: the Runs page with runs, the Sweep page) gets them as a plain caption, drawn
  with each whole page;
- every other page (Train, Tag, Data, an empty Runs page) gets them as a fragment with the
  page's one clock: looked at again every 5 s while a run trains or waits, every 30 s
  otherwise, so a run started from the CLI or by another viewer shows up. On an empty
  Runs page a first run reruns the whole page (its table replaces "No runs yet").

Every look is the shared listing of `ui.live` (at most one read of the runs folder per
0.5 s for all viewers).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from autotag.runs.manager import RunInfo, max_parallel
from autotag.store.job import RunState
from autotag.text import counted
from autotag.ui.auth import acting
from autotag.ui.live import INTERVALS_S, MIN_INTERVAL_S, live_runs
from autotag.ui.ticker import refresh_clock

#: Session-state key of the counts the sidebar shows.
SHOWN = "sidebar_counts"


@dataclass(frozen=True)
class Counts:
    runs: int
    active: int
    queued: int

    @classmethod
    def of(cls, runs: Sequence[RunInfo]) -> Counts:
        return cls(len(runs), sum(r.state.active for r in runs), sum(r.state is RunState.QUEUED for r in runs))

    def line(self) -> str:
        return f"{counted(self.runs, 'run')} · {self.active} training (limit {max_parallel()}) · {self.queued} queued"

    @property
    def interval_s(self) -> float:
        """Seconds until the next look: soon while something trains or waits, else to find new runs."""
        return INTERVALS_S[1] if self.active or self.queued else INTERVALS_S[2]


def counts_now(runs_dir: Path, max_age: float = MIN_INTERVAL_S) -> Counts:
    """The counts of the shared listing, at most `max_age` seconds old (0: read now)."""
    return Counts.of(live_runs(runs_dir).snapshot(max_age=max_age).runs)


def runs_sidebar(runs_dir: Path, counts: Counts, *, live: bool, rerun_page: bool = False) -> None:
    """The runs folder and its `counts` in the sidebar.

    `live`: the counts are a fragment with its own refresh clock (for pages without a live
    part of their own); `rerun_page`: a change of the counts reruns the whole page rather
    than the counts alone.
    """
    st.session_state[SHOWN] = counts
    with st.sidebar:
        st.caption(f"Runs folder: `{runs_dir.resolve()}`")
        if live:
            _live_counts(runs_dir, rerun_page)
        else:
            st.caption(counts.line())


@st.fragment
def _live_counts(runs_dir: Path, rerun_page: bool) -> None:
    acting()  # a fragment reruns without app.py's gate: a session logged out since sees nothing
    counts = counts_now(runs_dir)
    if counts != st.session_state.get(SHOWN):
        if rerun_page:
            st.rerun()
        st.session_state[SHOWN] = counts
    st.caption(counts.line())
    refresh_clock("sidebar_clock", counts.interval_s)
