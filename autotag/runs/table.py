"""What the dashboard and `runs list` show about runs: a row each, the best run, config differences.

The table never opens event files or checkpoints: one small JSON per run, so the Runs
page stays fast with hundreds of runs. `select_rows` is its search, filters, sort and the
grouping of a sweep's trials under one row; `page_of` cuts the result into pages.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autotag.config import ConfigError
from autotag.runs.manager import RunInfo
from autotag.store.job import RunState
from autotag.store.run_folder import RunFolder, RunStatus


def summarize(info: RunInfo) -> dict[str, Any]:
    """One row of the runs table: what a user compares runs by, from status.json only."""
    s = info.status
    model, data = (s.model, s.data) if s.model else _config_basics(info.path)  # runs from before status had them
    max_epochs = s.max_epochs or 0
    total = (s.steps_per_epoch or 0) * max_epochs
    done = 1.0 if info.state is RunState.COMPLETED else 0.0
    progress = min(1.0, s.global_step / total) if total else done
    start, end = s.started, s.ended if not info.state.active else time.time()
    duration = (end or time.time()) - start if start else None
    eta = _eta(s, total) if info.state is RunState.RUNNING and s.phase == RunStatus.TRAINING else None
    return {
        "run": info.name,
        "state": "stopped (forced)" if info.state is RunState.STOPPED and s.forced else str(info.state),
        "model": model,
        "data": Path(data or "-").name,
        "epoch": f"{s.epoch or 0}/{max_epochs}" if max_epochs else "-",
        "progress": progress,
        "best val_loss": s.best_val_loss,
        "val ROC-AUC": s.last_metrics.get("val_roc_auc"),
        "val PR-AUC": s.last_metrics.get("val_pr_auc"),
        "test ROC-AUC": s.test_roc_auc,
        "duration (s)": round(duration) if duration else None,
        "ETA (s)": round(eta) if eta else None,
        "sweep": s.sweep,
        "owner": s.owner,
        "created": s.created,
    }


#: Columns a filter chooses values of, and the columns a table may be sorted by (numbers).
FACETS = ("state", "model", "data", "sweep", "owner")
SORTABLE = ("created", "best val_loss", "val ROC-AUC", "val PR-AUC", "test ROC-AUC", "duration (s)")
#: Which way is better, for the best trial of a grouped sweep.
LOWER_IS_BETTER = frozenset({"best val_loss"})


@dataclass(frozen=True)
class RunFilter:
    """What a user narrows the runs table to: a search of the name, and values of each facet
    (empty: any)."""

    text: str = ""
    state: tuple[str, ...] = ()
    model: tuple[str, ...] = ()
    data: tuple[str, ...] = ()
    sweep: tuple[str, ...] = ()
    owner: tuple[str, ...] = ()

    def keeps(self, row: dict[str, Any]) -> bool:
        if self.text and self.text.casefold() not in str(row["run"]).casefold():
            return False
        return all(not wanted or row.get(f) in wanted for f, wanted in ((f, getattr(self, f)) for f in FACETS))


def facet_values(rows: list[dict[str, Any]]) -> dict[str, list[str]]:
    """The values each facet has among `rows`, sorted: what its filter offers."""
    return {f: sorted({str(r[f]) for r in rows if r.get(f)}) for f in FACETS}


def select_rows(
    rows: list[dict[str, Any]],
    keep: RunFilter = RunFilter(),
    sort_by: str = "created",
    descending: bool = True,
    group_sweeps: bool = True,
) -> list[dict[str, Any]]:
    """The rows `keep` keeps, sorted by `sort_by` (missing values last either way), with each
    sweep's trials as one row unless `group_sweeps` is off or the filter names the sweep."""
    kept = [r for r in rows if keep.keeps(r)]
    if group_sweeps:
        trials: dict[str, list[dict[str, Any]]] = {}
        for row in kept:
            if row.get("sweep") and row["sweep"] not in keep.sweep:
                trials.setdefault(row["sweep"], []).append(row)
        kept = [r for r in kept if r.get("sweep") not in trials] + [_sweep_row(s, t) for s, t in trials.items()]
    present = [r for r in kept if r.get(sort_by) is not None]
    present.sort(key=lambda r: r[sort_by], reverse=descending)
    return present + [r for r in kept if r.get(sort_by) is None]


def _sweep_row(sweep: str, trials: list[dict[str, Any]]) -> dict[str, Any]:
    """One row for a sweep's trials: their states counted, the best value of each metric."""
    states: dict[str, int] = {}
    for t in trials:
        states[t["state"]] = states.get(t["state"], 0) + 1
    row: dict[str, Any] = {
        "run": f"{sweep} ({len(trials)} trials)",
        "state": ", ".join(f"{n} {state}" for state, n in sorted(states.items())),
        "sweep": sweep,
        "created": min((t["created"] for t in trials if t.get("created")), default=None),
    }
    for column in ("model", "data", "owner"):
        values = {t.get(column) for t in trials}
        row[column] = values.pop() if len(values) == 1 else "several"
    for column in SORTABLE[1:]:
        values = [t[column] for t in trials if t.get(column) is not None]
        pick = min if column in LOWER_IS_BETTER or column == "duration (s)" else max
        row[column] = pick(values) if values else None
    return row


def page_of(rows: list[dict[str, Any]], number: int, size: int) -> tuple[list[dict[str, Any]], int]:
    """Page `number` (from 1, clamped) of `rows`, `size` rows a page; and how many pages there are."""
    pages = max(1, -(-len(rows) // size))
    number = min(max(1, number), pages)
    return rows[(number - 1) * size : number * size], pages


#: Steps trained before an ETA is shown: the first ones also pay for warm-up.
ETA_MIN_STEPS = 10


def _eta(status: RunStatus, total_steps: int) -> float | None:
    """Seconds left if every epoch runs (early stopping may end sooner), at the pace since
    training began: the time spent reading data and building the feature cache is not
    training pace, and counting it made the first estimates many times too long."""
    clock, step = status.train_clock, status.global_step
    if not clock or not total_steps:
        return None
    since, first_step = clock
    done = step - first_step
    if done < ETA_MIN_STEPS:
        return None
    at = status.updated or time.time()  # when `step` was written: it lags by up to 2 s
    return max(0.0, (at - since) / done * (total_steps - step) - (time.time() - at))


def _config_basics(run_dir: Path) -> tuple[str | None, str | None]:
    """Model and data of a run whose status.json does not have them, from its config.yaml."""
    cfg = _readable_config(run_dir)
    return cfg.get("model"), cfg.get("data")


def _readable_config(run_dir: Path) -> dict[str, Any]:
    """A run's config.yaml as written; empty when it is damaged (its run shows blanks, the page stays up)."""
    try:
        return RunFolder(run_dir).read_config()
    except ConfigError:
        return {}


def config_differences(runs: list[Path]) -> dict[str, dict[str, Any]]:
    """{field: {run name: value}} for each config field whose value is not the same in all `runs`.

    A field that one run's config.yaml lacks (an older run) counts as None there.
    """
    configs = {run.name: _readable_config(run) for run in runs}
    keys = sorted({k for c in configs.values() for k in c})
    return {
        k: {name: c.get(k) for name, c in configs.items()}
        for k in keys
        if len({str(c.get(k)) for c in configs.values()}) > 1
    }


#: Config differences a legend entry names; more are summed up as "+N more".
LEGEND_FIELDS = 3


def legend_names(runs: list[Path]) -> dict[str, str]:
    """Run folder name -> what a chart's legend calls it: the name the run was given and,
    when several are shown, how its config differs from the others' (`quick-demo · lr 0.001,
    seed 1`). Runs that read the same even then get their folder's id, so no two entries do."""
    diff = config_differences(runs) if len(runs) > 1 else {}
    shown_values = {field: _short_values(values) for field, values in diff.items()}
    names = {}
    for run in runs:
        parts = [f"{field} {values[run.name]}" for field, values in shown_values.items()]
        shown = parts[:LEGEND_FIELDS] + ([f"+{len(parts) - LEGEND_FIELDS} more"] if len(parts) > LEGEND_FIELDS else [])
        names[run.name] = " · ".join([RunFolder(run).label, *([", ".join(shown)] if shown else [])])
    twice = {n for n, count in Counter(names.values()).items() if count > 1}
    return {run: f"{name} #{run.rsplit('_', 1)[-1]}" if name in twice else name for run, name in names.items()}


def _short_values(values: dict[str, Any]) -> dict[str, str]:
    """One config field's values as a legend shows them: paths by as few of their last parts as
    tell them apart (`demo`, or `exp/demo` beside `data/demo`), no value as "-"."""
    full = {run: "-" if v is None else str(v) for run, v in values.items()}
    for parts in range(1, max(len(Path(text).parts) for text in full.values()) + 1):
        short = {run: "/".join(Path(text).parts[-parts:]) if "/" in text else text for run, text in full.items()}
        if len(set(short.values())) == len(set(full.values())):
            return short
    return full


def best_run(runs: list[RunInfo]) -> RunInfo | None:
    """The completed run with the highest test ROC-AUC (else the newest completed one)."""
    done = [r for r in runs if r.state is RunState.COMPLETED]
    if not done:
        return None
    return max(done, key=lambda r: (r.status.test_roc_auc or -1.0, r.name))
