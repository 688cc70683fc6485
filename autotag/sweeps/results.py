"""What a sweep found: its trials as rows, and the best one, read from the study.

`sweep show` prints these rows and the Sweep page tables them; both read the study, the one
truth about trials, through the sweep folder's spec.
"""

from __future__ import annotations

import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autotag.sweeps.folder import SweepFolder
from autotag.sweeps.space import parse_space

if TYPE_CHECKING:
    import optuna

    from autotag.sweeps.manager import SweepInfo


@dataclass(frozen=True)
class TrialRow:
    """One trial as a table shows it."""

    number: int
    state: str  # complete, pruned, running, waiting, fail
    value: float | None  # the sweep's metric: at the best checkpoint, or the last reported when pruned
    params: dict[str, Any]
    seconds: float | None
    epochs: int  # validation epochs reported to the pruner
    run: str | None  # the run folder
    note: str | None  # why it failed, or was not run


def load_study(folder: SweepFolder) -> optuna.Study:
    """The sweep's study, opened once per process and sweep: a page that refreshes every
    2 s for each viewer would otherwise open a database engine each time."""
    from autotag.sweeps.study import open_study

    with _STUDIES_LOCK:
        study = _STUDIES.get(folder.path)
        if study is None:
            spec = folder.spec()
            study = _STUDIES[folder.path] = open_study(folder, spec, parse_space(spec.space, spec.fixed))[0]
            while len(_STUDIES) > STUDIES_KEPT:
                _STUDIES.popitem(last=False)
        _STUDIES.move_to_end(folder.path)
        return study


#: Studies kept open: a few sweeps viewed at once.
STUDIES_KEPT = 8
#: Complete trials below which parameter importances are captioned a first guess (PED-ANOVA
#: compares the best trials' parameters with the rest: from a handful it ranks noise).
IMPORTANCE_TRIALS = 10
#: Trials whose per-epoch lines are named in a legend; more are named only in their hovers.
LEGEND_TRIALS = 12
_STUDIES: OrderedDict[Path, optuna.Study] = OrderedDict()
_STUDIES_LOCK = threading.Lock()


def trial_rows(study: optuna.Study) -> list[TrialRow]:
    """Every trial, oldest first."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        seconds = (
            (t.datetime_complete - t.datetime_start).total_seconds()
            if t.datetime_complete and t.datetime_start
            else None
        )
        value = (
            t.value
            if t.state.name == "COMPLETE"
            else (t.intermediate_values[t.last_step] if t.last_step is not None else None)
        )
        rows.append(
            TrialRow(
                number=t.number,
                state=t.state.name.lower(),
                value=value,
                params=dict(t.params),
                seconds=seconds,
                epochs=len(t.intermediate_values),
                run=t.user_attrs.get("run"),
                note=t.user_attrs.get("error") or t.user_attrs.get("note"),
            )
        )
    return rows


def best_row(study: optuna.Study) -> TrialRow | None:
    """The best complete trial, or None while there is none."""
    complete = [r for r in trial_rows(study) if r.state == "complete" and r.value is not None]
    if not complete:
        return None
    sign = 1 if study.direction.name == "MINIMIZE" else -1
    return min(complete, key=lambda r: sign * r.value)


def sweep_figures(study: optuna.Study, sweep: Path) -> dict[str, Any]:
    """optuna.visualization's plotly figures that the study has data for, by title.

    Built once per change of the study's trials (their states, values and reported
    epochs) and shared by every caller in this process: the Sweep page refreshes every 2 s
    for each viewer, and the importances alone take tens of milliseconds.

    Parameter importances use PED-ANOVA, which needs no scikit-learn (Optuna's default
    fANOVA does) and is meant for studies of tens of trials; it needs two complete trials.
    """
    trials = study.get_trials(deepcopy=False)
    key = (sweep, *((t.number, t.state, t.value, len(t.intermediate_values)) for t in trials))
    with _FIGURES_LOCK:
        if key not in _FIGURES:
            _FIGURES[key] = _build_figures(study)
            while len(_FIGURES) > STUDIES_KEPT:
                _FIGURES.popitem(last=False)
        _FIGURES.move_to_end(key)
        return _FIGURES[key]


_FIGURES: OrderedDict[tuple[Any, ...], dict[str, Any]] = OrderedDict()
_FIGURES_LOCK = threading.Lock()


def _build_figures(study: optuna.Study) -> dict[str, Any]:
    import optuna
    from optuna import visualization as vis

    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    figures: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if complete:
            figures["Optimization history"] = vis.plot_optimization_history(study)
            figures["Parallel coordinates"] = vis.plot_parallel_coordinate(study)
        if len(complete) >= 2 and any(t.params for t in complete):
            evaluator = optuna.importance.PedAnovaImportanceEvaluator()
            fig = vis.plot_param_importances(study, evaluator=evaluator)
            if len(complete) < IMPORTANCE_TRIALS:
                fig.update_layout(title=f"From {len(complete)} complete trials only: a first guess, not a ranking")
            figures["Parameter importances"] = fig
        reported = [v for t in trials for v in t.intermediate_values.values()]
        if reported:  # running trials too: the sweep's live curves
            figures["Intermediate values (per epoch)"] = _per_epoch(vis.plot_intermediate_values(study), reported)
    for fig in figures.values():
        fig.update_layout(height=380, margin={"l": 60, "r": 20, "t": 50, "b": 50})
    return figures


def _per_epoch(fig: Any, reported: list[float]) -> Any:
    """Optuna's per-epoch figure with each line named by its trial (in the legend up to
    LEGEND_TRIALS lines, and in every hover), on a log axis when one trial diverged."""
    for trace in fig.data:
        name = f"trial {trace.name.removeprefix('Trial')}"
        trace.update(name=name, hovertemplate=f"{name}, epoch %{{x}}: %{{y:.4f}}<extra></extra>")
    fig.update_layout(showlegend=len(fig.data) <= LEGEND_TRIALS)
    finite = [v for v in reported if v == v and v not in (float("inf"), float("-inf"))]
    if finite and min(finite) > 0 and max(finite) > 100 * min(finite):
        # A diverged trial's loss (thousands) would flatten every other curve onto zero.
        fig.update_yaxes(type="log")
    fig.update_xaxes(title="epoch")
    return fig


def compare_sweeps(infos: list[SweepInfo]) -> list[dict[str, Any]]:
    """One row per sweep, for comparing sweeps by their best value (newest first, as given)."""
    from autotag.sweeps.study import finished, trial_counts

    rows = []
    for info in infos:
        try:
            study = load_study(info.folder)
        except Exception as exc:  # a sweep whose PostgreSQL server is away still gets its row
            rows.append({"sweep": info.name, "state": str(info.state), "note": str(exc).splitlines()[0]})
            continue
        best = best_row(study)
        rows.append(
            {
                "sweep": info.name,
                "state": str(info.state),
                "finished": f"{finished(trial_counts(study))}/{info.spec.trials}",
                "metric": info.spec.metric,
                "best value": best.value if best else None,
                "best trial": best.number if best else None,
                "best run": Path(best.run).name if best and best.run else None,
                "searched": " ".join(info.spec.space),
            }
        )
    return rows
