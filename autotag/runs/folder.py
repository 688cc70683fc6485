"""Run folders on disk, the source of truth about every run (docs/architecture.md, "A run on disk").

`<runs dir>/<UTC time>_<name>_<short id>/` holds config.yaml (written once), labels.json,
status.json (replaced atomically), train.log, tb/, checkpoints/ and metrics.json.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from autotag.config import TrainConfig, save_config
from autotag.paths import absolute

CONFIG_FILE = "config.yaml"
STATUS_FILE = "status.json"
LABELS_FILE = "labels.json"
METRICS_FILE = "metrics.json"
REPORT_FILE = "data_report.json"
THRESHOLDS_FILE = "thresholds.json"
LOG_FILE = "train.log"
TB_DIR = "tb"
#: Written by Stop before it signals the trainer; removed by Resume.
STOP_FILE = "stop_requested"
CKPT_DIR = "checkpoints"
STATUS_LOCK = ".status.lock"
#: Marks a temporary file as `.<target name>.tmp-<writer pid>`.
TMP_MARK = ".tmp-"

_NAME_OK = re.compile(r"[^A-Za-z0-9._-]+")


class RunState(StrEnum):
    """A run's state as status.json spells it; the trainer writes its own, a manager derives
    "crashed" (autotag.runs.manager.derive_state). Being a `str`, it is stored and compared as one."""

    QUEUED = "queued"
    STARTING = "starting"
    RUNNING = "running"
    COMPLETED = "completed"
    STOPPED = "stopped"
    FAILED = "failed"
    CRASHED = "crashed"
    UNKNOWN = "unknown"  # status.json missing, unreadable or from an unknown writer

    @classmethod
    def of(cls, value: object) -> RunState:
        try:
            return cls(value)
        except ValueError:
            return cls.UNKNOWN

    @property
    def active(self) -> bool:
        """A trainer process is (about to be) running it."""
        return self in (RunState.STARTING, RunState.RUNNING)

    @property
    def final(self) -> bool:
        """It has ended and nothing will change it on its own."""
        return self in (RunState.COMPLETED, RunState.FAILED, RunState.STOPPED, RunState.CRASHED)

    @property
    def resumable(self) -> bool:
        """Resume may continue it from its last checkpoint."""
        return self in (RunState.STOPPED, RunState.CRASHED, RunState.FAILED)

    @property
    def stoppable(self) -> bool:
        """Stop ends its trainer, or cancels it while queued."""
        return self.active or self is RunState.QUEUED


class RunError(ValueError):
    """A run folder is missing something that the action needs; the message says what."""


def default_runs_dir() -> Path:
    """`$AUTOTAG_RUNS_DIR`, else `./runs`, absolute (see `autotag.paths`)."""
    return absolute(os.environ.get("AUTOTAG_RUNS_DIR", "runs"))


def runs_folder(runs_dir: str | Path | None = None) -> Path:
    """The runs folder a caller named, absolute, else the default one."""
    return absolute(runs_dir) if runs_dir else default_runs_dir()


def sanitize_name(name: str) -> str:
    """A run name safe as one path component: letters, digits, `.`, `_`, `-`; at most 40."""
    clean = _NAME_OK.sub("-", name).strip(".-_")[:40]
    return clean or "run"


#: Free space a new run needs for checkpoints, event files and logs.
MIN_FREE_MB = 200


def check_writable(runs_dir: Path, min_free_mb: int = MIN_FREE_MB) -> None:
    """Refuse, before any training starts, a runs folder that cannot hold a run.

    Raises:
        RunError: it cannot be created, is read-only, or has too little free space.
    """
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=runs_dir, prefix=".write-test-") as probe:  # unique per caller
            probe.write(b"x" * 4096)
            probe.flush()
    except OSError as exc:
        raise RunError(f"the runs folder {runs_dir} is not writable: {exc.strerror or exc}") from None
    free_mb = shutil.disk_usage(runs_dir).free / 2**20
    if free_mb < min_free_mb:
        raise RunError(
            f"only {free_mb:.0f} MB free in {runs_dir}; a run needs at least {min_free_mb} MB for checkpoints and logs"
        )


def create_run(
    config: TrainConfig, runs_dir: str | Path | None = None, name: str | None = None, folder: str | Path | None = None
) -> Path:
    """Make a new run folder with its config.yaml and a "queued" status; return its path.

    Args:
        folder: Use this exact folder (new or empty) instead of a generated name in
            `runs_dir`; a cluster job names it so that every rank knows it in advance.

    Raises:
        RunError: the runs folder is read-only, full, or cannot be created; `folder`
            already holds something.
    """
    if folder is not None:
        folder = absolute(folder)
        check_writable(folder.parent)
        folder.mkdir(exist_ok=True)
        if any(folder.iterdir()):
            raise RunError(f"run folder {folder} is not empty; give a new folder (or resume that run)")
        run_dir = folder
    else:
        runs_dir = runs_folder(runs_dir)
        check_writable(runs_dir)
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
        run_dir,
        state=RunState.QUEUED,
        created=time.time(),
        max_epochs=config.max_epochs,
        model=config.model,
        data=config.data,
    )
    return run_dir


def run_label(run_dir: Path) -> str:
    """The name given to `create_run` (folders are `<UTC time>_<name>_<id>`), else the folder's name."""
    parts = run_dir.name.split("_")  # the name itself may hold "_" (shortchunk_cnn)
    return "_".join(parts[1:-1]) if len(parts) >= 3 else run_dir.name


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so that readers see the old or the new file, never a partial one.

    The temporary file sits next to the target (same filesystem, so `os.replace` is
    atomic) and carries the writer's pid, so a sweep can tell orphans from live writes.
    """
    tmp = path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}")
    try:
        with tmp.open("w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, allow_nan=False, default=str)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def _status_lock(run_dir: Path) -> Iterator[None]:
    """Serialises read-modify-write of status.json between the trainer and managers."""
    with open(Path(run_dir) / STATUS_LOCK, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def read_status(run_dir: Path) -> dict[str, Any]:
    """The run's status.json, or {} when it is missing or unreadable."""
    try:
        data = json.loads((Path(run_dir) / STATUS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_status(run_dir: Path, **fields: Any) -> dict[str, Any]:
    """Merge `fields` into status.json atomically; return the new status."""
    with _status_lock(run_dir):
        status = read_status(run_dir)
        status.update(fields)
        status["updated"] = time.time()
        write_json_atomic(Path(run_dir) / STATUS_FILE, status)
    return status


def checkpoint_candidates(run_dir: str | Path) -> list[Path]:
    """The run's checkpoints, best first: the recorded best, other best-*, then last.ckpt.

    Raises:
        RunError: the folder is not a run, or it has no checkpoint yet.
    """
    run_dir = absolute(run_dir)
    if not (run_dir / CONFIG_FILE).is_file():
        raise RunError(f"{run_dir} is not a run folder (no {CONFIG_FILE})")
    found: list[Path] = []
    recorded = read_status(run_dir).get("best_checkpoint")
    if recorded and (run_dir / recorded).is_file():
        found.append(run_dir / recorded)
    found += sorted((run_dir / CKPT_DIR).glob("best-*.ckpt"), key=lambda p: p.stat().st_mtime, reverse=True)
    found.append(run_dir / CKPT_DIR / "last.ckpt")
    # Only files that really live in this run's checkpoints/ (a symlink out is refused).
    inside = (run_dir / CKPT_DIR).resolve()
    found = [p for p in dict.fromkeys(found) if p.is_file() and p.resolve().parent == inside]
    if not found:
        raise RunError(f"run {run_dir.name} has no checkpoint yet (nothing in {CKPT_DIR}/)")
    return found


def best_checkpoint(run_dir: str | Path) -> Path:
    """The run's best checkpoint by val_loss (last.ckpt when there is no best yet)."""
    return checkpoint_candidates(run_dir)[0]


def sweep_orphans(run_dir: Path) -> list[Path]:
    """Delete temporary files in a run folder and its checkpoints/ whose writer is dead."""
    from autotag.runs.procs import is_alive

    removed = []
    for folder in (Path(run_dir), Path(run_dir) / CKPT_DIR):
        for tmp in folder.glob(f".*{TMP_MARK}*") if folder.is_dir() else []:
            pid = tmp.name.rsplit(TMP_MARK, 1)[-1]
            if pid.isdigit() and not is_alive(int(pid)):
                tmp.unlink(missing_ok=True)
                removed.append(tmp)
    return removed
