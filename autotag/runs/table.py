"""What the dashboard and `runs list` show about runs, from their status files only.

Listing never opens event files or checkpoints: one small JSON per run, so the Runs page
stays fast with hundreds of runs.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from autotag.runs.folder import CONFIG_FILE, RunState
from autotag.runs.manager import RunInfo


def summarize(info: RunInfo) -> dict[str, Any]:
    """One row of the runs table: what a user compares runs by, from status.json only."""
    s = info.status
    if "model" not in s:  # runs created before status carried these
        s = {**s, **_config_basics(info.path)}
    last = s.get("last_metrics") or {}
    max_epochs = s.get("max_epochs") or 0
    total = (s.get("steps_per_epoch") or 0) * max_epochs
    done = 1.0 if info.state is RunState.COMPLETED else 0.0
    progress = min(1.0, s.get("global_step", 0) / total) if total else done
    start, end = s.get("started"), s.get("ended") if not info.state.active else time.time()
    duration = (end or time.time()) - start if start else None
    eta = _eta(s, total) if info.state is RunState.RUNNING and s.get("phase") == "training" else None
    return {
        "run": info.name,
        "state": "stopped (forced)" if info.state is RunState.STOPPED and s.get("forced") else str(info.state),
        "model": s.get("model"),
        "data": Path(s.get("data") or "-").name,
        "epoch": f"{s.get('epoch', 0)}/{max_epochs}" if max_epochs else "-",
        "progress": progress,
        "best val_loss": s.get("best_val_loss"),
        "val ROC-AUC": last.get("val_roc_auc"),
        "val PR-AUC": last.get("val_pr_auc"),
        "test ROC-AUC": s.get("test_roc_auc"),
        "duration (s)": round(duration) if duration else None,
        "ETA (s)": round(eta) if eta else None,
    }


#: Steps trained before an ETA is shown: the first ones also pay for warm-up.
ETA_MIN_STEPS = 10


def _eta(status: dict[str, Any], total_steps: int) -> float | None:
    """Seconds left if every epoch runs (early stopping may end sooner), at the pace since
    training began: the time spent reading data and building the feature cache is not
    training pace, and counting it made the first estimates many times too long."""
    clock = status.get("train_clock")
    step = status.get("global_step", 0)
    if not clock or not total_steps:
        return None
    since, first_step = clock
    done = step - first_step
    if done < ETA_MIN_STEPS:
        return None
    at = status.get("updated") or time.time()  # when `step` was written: it lags by up to 2 s
    return max(0.0, (at - since) / done * (total_steps - step) - (time.time() - at))


def _config_basics(run_dir: Path) -> dict[str, Any]:
    import yaml

    try:
        cfg = yaml.safe_load((run_dir / CONFIG_FILE).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return {}
    return {"model": cfg.get("model"), "data": cfg.get("data")}


def best_run(runs: list[RunInfo]) -> RunInfo | None:
    """The completed run with the highest test ROC-AUC (else the newest completed one)."""
    done = [r for r in runs if r.state is RunState.COMPLETED]
    if not done:
        return None
    return max(done, key=lambda r: (r.status.get("test_roc_auc") or -1.0, r.name))
