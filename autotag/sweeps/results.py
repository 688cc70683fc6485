"""What a sweep found: its trials as rows, and the best one, read from the study.

`sweep show` prints these rows and the Sweep page tables them; both read the study, the one
truth about trials, through the sweep folder's spec.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from autotag.sweeps.folder import SweepFolder
from autotag.sweeps.space import parse_space

if TYPE_CHECKING:
    import optuna


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
    from autotag.sweeps.driver import open_study

    spec = folder.spec()
    return open_study(folder, spec, parse_space(spec.space, spec.fixed))[0]


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
