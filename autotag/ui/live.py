"""What every viewer of the live Runs page sees, read once per change for all of them.

A Runs page refreshes about once a second while a run trains. When each session did its
own reading, N viewers cost N times the work: every status.json re-read, every event file
polled and the plotly figure rebuilt (20 ms of the 24 % of a core that one viewer cost).
One `LiveRuns` per runs folder lives as long as the server and serves every session:

- `snapshot()` lists the runs at most once per `MIN_INTERVAL_S`, whoever asks;
- `readers()` refreshes each shown run's `CurveReader` at most once per `MIN_INTERVAL_S`;
- `figure()` builds the curves figure once per change of its points and options, and
  hands every session the same figure (`tag_figure()` alike for one run's per-tag curves).

`refresh_interval` says how soon a page should look again.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import plotly.graph_objects as go

from autotag.runs import manager
from autotag.runs.curves import CurveReader
from autotag.runs.manager import RunInfo
from autotag.runs.table import summarize
from autotag.store.run_folder import RunFolder
from autotag.ui.charts import curves_figure, tag_curves_figure

#: Oldest a shared read may be: the curves lag the event file by at most this plus a refresh.
MIN_INTERVAL_S = 0.5
#: Seconds between a page's refreshes: a shown run trains / another run trains / all final.
#: The last only finds runs started elsewhere (the CLI, another viewer).
INTERVALS_S = (1.0, 5.0, 30.0)
#: Figures kept: a few smoothing settings and run selections at once.
FIGURES_KEPT = 32


@dataclass(frozen=True)
class Snapshot:
    """The runs at one moment: newest first, each with its row of the runs table."""

    runs: tuple[RunInfo, ...]
    rows: tuple[dict[str, Any], ...]

    def by_name(self) -> dict[str, RunInfo]:
        return {r.name: r for r in self.runs}


@dataclass
class _Watched:
    reader: CurveReader
    refreshed_at: float = float("-inf")
    lock: threading.Lock = field(default_factory=threading.Lock)


class LiveRuns:
    """The shared reads of one runs folder (see the module docstring); thread-safe."""

    def __init__(self, runs_dir: Path, clock: Callable[[], float] = time.monotonic) -> None:
        self.runs_dir = runs_dir
        self._clock = clock
        self._lock = threading.Lock()
        self._figure_lock = threading.Lock()  # a build (~20 ms) does not hold up the listing
        self._snapshot: Snapshot | None = None
        self._snapshot_at = float("-inf")
        self._readers: dict[Path, _Watched] = {}
        self._figures: OrderedDict[tuple[Any, ...], go.Figure] = OrderedDict()
        #: How many times the runs folder and the event files were actually read (for tests).
        self.reads = {"runs": 0, "curves": 0, "figures": 0}

    def snapshot(self, max_age: float = MIN_INTERVAL_S) -> Snapshot:
        """The runs as listed at most `max_age` seconds ago (0: now, as after a user's action)."""
        with self._lock:
            now = self._clock()
            if self._snapshot is None or now - self._snapshot_at >= max_age:
                runs = tuple(manager.list_runs(self.runs_dir))
                self.reads["runs"] += 1
                for gone in self._readers.keys() - {r.path for r in runs}:  # deleted: memory stays flat
                    del self._readers[gone]
                rows = tuple(summarize(r) for r in runs)
                self._snapshot = Snapshot(runs, rows)
                self._snapshot_at = now
            return self._snapshot

    def readers(self, runs: Sequence[RunInfo]) -> dict[str, CurveReader]:
        """Name -> the run's reader, refreshed at most `MIN_INTERVAL_S` ago."""
        out = {}
        for run in runs:
            with self._lock:
                watched = self._readers.get(run.path)
                if watched is None:
                    watched = self._readers[run.path] = _Watched(CurveReader(RunFolder(run.path).tb))
            with watched.lock:  # viewers of this run wait for its one read; others go on
                now = self._clock()
                if now - watched.refreshed_at >= MIN_INTERVAL_S:
                    watched.reader.refresh()
                    watched.refreshed_at = now
                    self.reads["curves"] += 1
            out[run.name] = watched.reader
        return out

    def figure(
        self,
        readers: dict[str, CurveReader],
        smoothing: float,
        log_loss: bool = False,
        x: str = "step",
        names: Mapping[str, str] | None = None,
    ) -> go.Figure:
        """The curves figure of `readers`, built once for every session that asks the same:
        equal points (counted with the replaced ones), damage, options and names, equal figures."""
        key = ("curves", round(smoothing, 4), log_loss, x, *sorted((names or {}).items()), *_points(readers))
        return self._cached(key, lambda: curves_figure(readers, smoothing, log_loss=log_loss, x=x, names=names))

    def tag_figure(self, name: str, reader: CurveReader, x: str = "step") -> go.Figure:
        """One run's per-tag validation curves, shared as `figure()` is."""
        return self._cached(("tags", x, *_points({name: reader})), lambda: tag_curves_figure(reader, x))

    def _cached(self, key: tuple[Any, ...], build: Callable[[], go.Figure]) -> go.Figure:
        with self._figure_lock:
            cached = self._figures.get(key)
            if cached is not None:
                self._figures.move_to_end(key)
                return cached
            built = build()
            self.reads["figures"] += 1
            self._figures[key] = built
            while len(self._figures) > FIGURES_KEPT:
                self._figures.popitem(last=False)
            return built


def _points(readers: Mapping[str, CurveReader]) -> list[tuple[str, int, int]]:
    """What a figure of `readers` depends on: each run's points read and damage found."""
    return [(name, r.points, len(r.problems)) for name, r in readers.items()]


def refresh_interval(
    snapshot: Snapshot, shown: Sequence[str], readers: Mapping[str, CurveReader] | None = None
) -> float:
    """Seconds until a page showing `shown` should look again (see `INTERVALS_S`).

    A shown run whose event files are not read to the end yet (a refresh reads for a bounded
    time: a long finished run, or one with a damaged stretch) is looked at as often as a
    training one, so its curve completes in seconds rather than at the 30 s pace.
    """
    shown_set = set(shown)
    if any(r.state.stoppable for r in snapshot.runs if r.name in shown_set):
        return INTERVALS_S[0]
    if readers and not all(reader.caught_up for reader in readers.values()):
        return INTERVALS_S[0]
    if any(r.state.stoppable for r in snapshot.runs):
        return INTERVALS_S[1]
    return INTERVALS_S[2]


_SHARED: dict[Path, LiveRuns] = {}
_SHARED_LOCK = threading.Lock()


def live_runs(runs_dir: Path) -> LiveRuns:
    """The one `LiveRuns` of `runs_dir` in this process."""
    key = Path(runs_dir).resolve()
    with _SHARED_LOCK:
        return _SHARED.setdefault(key, LiveRuns(key))
