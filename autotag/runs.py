"""Run folders on disk, the source of truth about every run (DESIGN.md, "A run on disk").

`<runs dir>/<UTC time>_<name>_<short id>/` holds config.yaml (written once), labels.json,
status.json (replaced atomically), train.log, tb/, checkpoints/ and metrics.json.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from autotag.config import TrainConfig, save_config

CONFIG_FILE = "config.yaml"
STATUS_FILE = "status.json"
LABELS_FILE = "labels.json"
METRICS_FILE = "metrics.json"
REPORT_FILE = "data_report.json"
THRESHOLDS_FILE = "thresholds.json"
LOG_FILE = "train.log"
TB_DIR = "tb"
CKPT_DIR = "checkpoints"

_NAME_OK = re.compile(r"[^A-Za-z0-9._-]+")


class RunError(ValueError):
    """A run folder is missing something that the action needs; the message says what."""


def default_runs_dir() -> Path:
    """`$AUTOTAG_RUNS_DIR`, else `./runs`."""
    return Path(os.environ.get("AUTOTAG_RUNS_DIR", "runs")).expanduser()


def sanitize_name(name: str) -> str:
    """A run name safe as one path component: letters, digits, `.`, `_`, `-`; at most 40."""
    clean = _NAME_OK.sub("-", name).strip(".-_")[:40]
    return clean or "run"


def create_run(config: TrainConfig, runs_dir: str | Path | None = None, name: str | None = None) -> Path:
    """Make a new run folder with its config.yaml and a "queued" status; return its path."""
    runs_dir = Path(runs_dir) if runs_dir else default_runs_dir()
    runs_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    label = sanitize_name(name or config.model)
    while True:  # exclusive mkdir: two launches in the same second never share a folder
        run_dir = runs_dir / f"{stamp}_{label}_{secrets.token_hex(3)}"
        try:
            run_dir.mkdir()
            break
        except FileExistsError:
            continue
    save_config(config, run_dir / CONFIG_FILE)
    write_status(
        run_dir, state="queued", created=time.time(), max_epochs=config.max_epochs, model=config.model, data=config.data
    )
    return run_dir


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so that readers see the old or the new file, never a partial one."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, allow_nan=False, default=str)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_status(run_dir: Path) -> dict[str, Any]:
    """The run's status.json, or {} when it is missing or unreadable."""
    try:
        data = json.loads((Path(run_dir) / STATUS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_status(run_dir: Path, **fields: Any) -> dict[str, Any]:
    """Merge `fields` into status.json atomically; return the new status."""
    status = read_status(run_dir)
    status.update(fields)
    status["updated"] = time.time()
    write_json_atomic(Path(run_dir) / STATUS_FILE, status)
    return status


def best_checkpoint(run_dir: str | Path) -> Path:
    """The run's best checkpoint by val_loss; falls back to last.ckpt.

    Raises:
        RunError: the folder is not a run, or it has no checkpoint yet.
    """
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG_FILE).is_file():
        raise RunError(f"{run_dir} is not a run folder (no {CONFIG_FILE})")
    recorded = read_status(run_dir).get("best_checkpoint")
    if recorded and (run_dir / recorded).is_file():
        return run_dir / recorded
    ckpts = sorted((run_dir / CKPT_DIR).glob("best-*.ckpt"), key=lambda p: p.stat().st_mtime)
    if ckpts:
        return ckpts[-1]
    if (run_dir / CKPT_DIR / "last.ckpt").is_file():
        return run_dir / CKPT_DIR / "last.ckpt"
    raise RunError(f"run {run_dir.name} has no checkpoint yet (nothing in {CKPT_DIR}/)")
