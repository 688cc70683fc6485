"""The sidebar's counts: their line, their pace, and one refresh clock a page.

That the counts change on screen without a click (a run started elsewhere, one ending)
needs a browser: tests/test_browser.py::test_the_sidebar_counts_follow_runs_started_and_ended_elsewhere.
"""

from __future__ import annotations

import sys
import time
import types
from pathlib import Path
from types import SimpleNamespace

import pytest
from streamlit.testing.v1 import AppTest

from autotag.store.job import RunState
from autotag.store.run_folder import RunFolder, create_run, default_runs_dir
from autotag.ui.live import INTERVALS_S
from autotag.ui.sidebar import Counts
from tests.conftest import tiny_config

APP = str(Path(__file__).resolve().parents[2] / "app.py")


def _runs(*states: RunState) -> list[SimpleNamespace]:
    return [SimpleNamespace(state=s) for s in states]


def test_the_counts_line_and_how_soon_it_looks_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOTAG_MAX_RUNS", "2")
    counts = Counts.of(_runs(RunState.RUNNING, RunState.QUEUED, RunState.QUEUED, RunState.COMPLETED))
    assert counts == Counts(runs=4, active=1, queued=2)
    assert counts.line() == "4 runs · 1 training (limit 2) · 2 queued"
    assert counts.interval_s == INTERVALS_S[1]
    assert Counts.of(_runs(RunState.QUEUED)).interval_s == INTERVALS_S[1]  # a queued run starts soon
    idle = Counts.of(_runs(RunState.COMPLETED, RunState.CRASHED))
    assert idle.interval_s == INTERVALS_S[2]  # only to find runs started elsewhere
    assert Counts.of([]).line().startswith("0 runs · 0 training")


def _clocks_drawn(at: AppTest, before: dict[str, int]) -> set[str]:
    """The refresh clocks (`ui.ticker`) the last run drew: each counts its draws in session state."""
    return {k for k, v in at.session_state.items() if k.endswith("_clock_drawn") and v != before.get(k, 0)}


def _draw(at: AppTest, page: str) -> set[str]:
    """`page` drawn through app.py. AppTest runs each page alone after its first run, as a
    fresh server's older pages/ layout does; without "_app_nav" the page hands over to app.py."""
    before = {k: v for k, v in at.session_state.items() if k.endswith("_clock_drawn")}
    del at.session_state["_app_nav"]
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return _clocks_drawn(at, before)


def test_every_page_has_one_refresh_clock_and_the_counts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Train, Tag and Data: the sidebar's clock; Runs and Sweep: their live part's clock, and the
    sidebar's counts redrawn with the page (an empty Runs page has no live part: the sidebar's)."""
    monkeypatch.setenv("AUTOTAG_DEMO_DIR", str(tmp_path / "no-demo"))
    monkeypatch.delenv("AUTOTAG_MAX_RUNS", raising=False)
    # app.py imports the tagger (torch) in a background thread: not needed here, and a thread
    # still importing when the tests end prints a traceback
    monkeypatch.setitem(sys.modules, "autotag.serving.tagger", types.ModuleType("autotag.serving.tagger"))
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    expected = {
        "pages/train.py": {"sidebar_clock_drawn"},
        "pages/runs.py": {"sidebar_clock_drawn"},  # no runs yet
        "pages/sweep.py": {"sweep_watch_clock_drawn"},
        "pages/tag.py": {"sidebar_clock_drawn"},
        "pages/data.py": {"sidebar_clock_drawn"},
    }
    for page, clocks in expected.items():
        assert _draw(at, page) == clocks, page
        assert "0 runs · 0 training (limit 1) · 0 queued" in [c.value for c in at.sidebar.caption], page

    run = create_run(tiny_config(tmp_path), default_runs_dir(), "done")
    RunFolder(run).write_status(state="completed", epoch=1, max_epochs=1, started=time.time() - 5, ended=time.time())
    assert _draw(at, "pages/runs.py") == {"runs_clock_drawn"}
    assert "1 run · 0 training (limit 1) · 0 queued" in [c.value for c in at.sidebar.caption]
    assert _draw(at, "pages/train.py") == {"sidebar_clock_drawn"}
