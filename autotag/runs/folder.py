"""Run folders on disk, the source of truth about every run (docs/architecture.md, "A run on disk").

`<runs dir>/<UTC time>_<name>_<short id>/` holds config.yaml (written once), labels.json,
status.json (replaced atomically), train.log, tb/, checkpoints/ and metrics.json. `RunFolder`
names every file of that layout, and `RunStatus` every field of status.json, once.
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
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar

from autotag.config import TrainConfig, save_config
from autotag.paths import absolute

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
    PRUNED = "pruned"  # a sweep's pruner ended the trial early (autotag.training.pruning)
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
        return self in (RunState.COMPLETED, RunState.FAILED, RunState.STOPPED, RunState.CRASHED, RunState.PRUNED)

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


@dataclass
class RunStatus:
    """status.json as a typed record: every field a writer sets is declared here.

    The trainer writes its progress and final state, a manager the launch facts and a
    derived "crashed". `RunFolder.write_status` refuses a field not declared here, so a
    misspelt name fails where it is written instead of showing nothing on a page.
    """

    state: RunState = RunState.UNKNOWN
    note: str | None = None  # why a queued run ended without starting
    created: float | None = None  # times are seconds since the epoch
    launched: float | None = None
    started: float | None = None
    updated: float | None = None
    ended: float | None = None
    model: str | None = None
    data: str | None = None
    max_epochs: int | None = None
    launch_token: str | None = None  # the dedupe key of a launch (a double click starts one run)
    owner: str | None = None  # who launched it: a login's e-mail, or os:<user> (`autotag.access`)
    resume_from: str | None = None  # checkpoint the next start continues from, relative to the run
    pid: int | None = None  # the trainer's process, identified by pid and start time together
    pid_start: float | None = None
    phase: str | None = None  # what the trainer does now, in words
    cache_done: int | None = None
    cache_total: int | None = None
    skipped_clips: int | None = None
    epoch: int | None = None  # 1-based: the epoch in progress, or just validated
    global_step: int = 0
    steps_per_epoch: int | None = None
    train_clock: tuple[float, int] | None = None  # (time, step) when training began: the ETA's clock
    best_val_loss: float | None = None
    best_val_metrics: dict[str, float] = field(default_factory=dict)  # every val_* of the best epoch
    last_metrics: dict[str, float] = field(default_factory=dict)
    best_checkpoint: str | None = None  # relative to the run folder
    init_checkpoint: str | None = None  # the earlier run's checkpoint this run started from
    test_roc_auc: float | None = None
    error: str | None = None
    forced: bool | None = None  # Stop had to kill the trainer

    #: The phase in which steps are trained: the only one whose pace an ETA may use.
    TRAINING: ClassVar[str] = "training"

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunStatus:
        """A record from status.json's object; fields it does not declare are left on disk."""
        values = {f.name: data[f.name] for f in fields(cls) if data.get(f.name) is not None}
        values["state"] = RunState.of(data.get("state"))
        if values.get("train_clock") is not None:
            values["train_clock"] = tuple(values["train_clock"])
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        """The fields that are set, as JSON values (`runs show` prints this)."""
        return {k: v for k, v in asdict(self).items() if v is not None and v != {}}


@dataclass(frozen=True)
class RunFolder:
    """One run's folder; the only place that names the files of the layout.

    Like mlflow's FileStore, it declares each name once: pages, the CLI and the trainer
    ask it for `folder.metrics` instead of spelling "metrics.json" themselves.
    """

    path: Path

    BEST_PREFIX = "best-"  # ModelCheckpoint's file names: best-epoch..., and last.ckpt

    @classmethod
    def at(cls, run_dir: str | Path) -> RunFolder:
        """The run folder at a user's path, made absolute (see `autotag.paths`)."""
        return cls(absolute(run_dir))

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def label(self) -> str:
        """The name given to `create_run` (folders are `<UTC time>_<name>_<id>`), else the folder's name."""
        parts = self.path.name.split("_")  # the name itself may hold "_" (shortchunk_cnn)
        return "_".join(parts[1:-1]) if len(parts) >= 3 else self.path.name

    @property
    def config(self) -> Path:
        """The run's TrainConfig, written once when the run is made."""
        return self.path / "config.yaml"

    @property
    def status_file(self) -> Path:
        return self.path / "status.json"

    @property
    def labels(self) -> Path:
        """The tag names, in the model's output order."""
        return self.path / "labels.json"

    @property
    def metrics(self) -> Path:
        """Test metrics of the best checkpoint, written when the run completes."""
        return self.path / "metrics.json"

    @property
    def data_report(self) -> Path:
        """The data-set check (`autotag.data.checks`) of the data the run trained on."""
        return self.path / "data_report.json"

    @property
    def thresholds(self) -> Path:
        """Per-tag decision thresholds tuned on the validation split."""
        return self.path / "thresholds.json"

    @property
    def log(self) -> Path:
        return self.path / "train.log"

    @property
    def tb(self) -> Path:
        """TensorBoard event files: the curves' only source."""
        return self.path / "tb"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoints / "last.ckpt"

    @property
    def trial(self) -> Path:
        """A sweep's trial: which study and trial this run is (`autotag.training.pruning.TrialLink`)."""
        return self.path / "trial.json"

    @property
    def stop_request(self) -> Path:
        """Written by Stop before it signals the trainer; removed by Resume."""
        return self.path / "stop_requested"

    @property
    def is_run(self) -> bool:
        return self.config.is_file()

    def read_json(self, file: Path) -> Any:
        """One of the folder's JSON files, or None when it is missing or unreadable."""
        try:
            return json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def read_config(self) -> dict[str, Any]:
        """config.yaml as written, unvalidated (a run from an older version may lack newer fields).

        Raises:
            OSError, yaml.YAMLError: it cannot be read.
        """
        import yaml

        raw = yaml.safe_load(self.config.read_text(encoding="utf-8"))
        return raw if isinstance(raw, dict) else {}

    def read_status(self) -> RunStatus:
        """status.json as a record; state "unknown" when it is missing or unreadable."""
        data = self.read_json(self.status_file)
        return RunStatus.from_json(data if isinstance(data, dict) else {})

    def write_status(self, **changes: Any) -> RunStatus:
        """Merge `changes` into status.json atomically; return the new status.

        Raises:
            TypeError: a field that `RunStatus` does not declare.
        """
        return RunStatus.from_json(merge_status(self.status_file, changes, self.path / ".status.lock", RunStatus))

    def sweep_orphans(self) -> list[Path]:
        """Delete temporary files in the folder and its checkpoints/ whose writer is dead."""
        from autotag.runs.procs import is_alive

        removed = []
        for folder in (self.path, self.checkpoints):
            for tmp in folder.glob(f".*{TMP_MARK}*") if folder.is_dir() else []:
                pid = tmp.name.rsplit(TMP_MARK, 1)[-1]
                if pid.isdigit() and not is_alive(int(pid)):
                    tmp.unlink(missing_ok=True)
                    removed.append(tmp)
        return removed


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
    run = RunFolder(run_dir)
    save_config(config, run.config)
    run.write_status(
        state=RunState.QUEUED,
        created=time.time(),
        max_epochs=config.max_epochs,
        model=config.model,
        data=config.data,
    )
    return run_dir


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock between this machine's processes, held on `path` (created if missing)."""
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def merge_status(file: Path, changes: dict[str, Any], lock: Path, record: type) -> dict[str, Any]:
    """Merge `changes` into the JSON object in `file`, stamped `updated`, and return it.

    The read-modify-write holds `lock`, so a trainer's and a manager's writes (or a sweep's
    workers') never lose each other's fields; the file is replaced atomically, so a reader
    never sees half of it.

    Raises:
        TypeError: a field that the dataclass `record` (the file's typed reader) does not
            declare: a misspelt name fails where it is written, not as nothing on a page.
    """
    unknown = changes.keys() - {f.name for f in fields(record)}
    if unknown:
        raise TypeError(f"{file.name} has no field {', '.join(sorted(unknown))} (see {record.__name__})")
    with file_lock(lock):
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = {}
        data = data if isinstance(data, dict) else {}
        data.update(changes)
        data["updated"] = time.time()
        write_json_atomic(file, data)
    return data


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
