"""Run folders on disk, the source of truth about every run (docs/architecture.md, "A run on disk").

`<runs dir>/<UTC time>_<name>_<short id>/` holds config.yaml (written once), labels.json,
status.json (replaced atomically), train.log, tb/, checkpoints/ and metrics.json. `RunFolder`
names every file of that layout, and `RunStatus` every field of status.json, once.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from autotag.config import OLDER_RUNS, ConfigError, TrainConfig, read_yaml_file, save_config
from autotag.errors import AutotagError
from autotag.paths import absolute
from autotag.store.files import TMP_MARK, Count, JsonFileError, Pid, Timestamp, load_json
from autotag.store.job import RunState, StatusFile

_NAME_OK = re.compile(r"[^A-Za-z0-9._-]+")


class RunError(AutotagError):
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


#: The TensorBoard tag prefix of each tag's validation ROC-AUC (`val_roc_auc/piano`), the
#: per-tag curves. Scalars named with a "/" stay out of status.json and the epoch lines:
#: fifty tags' values would drown the few a user reads there.
PER_TAG_AUC = "val_roc_auc/"

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
    created: Timestamp | None = None
    launched: Timestamp | None = None
    started: Timestamp | None = None
    updated: Timestamp | None = None
    ended: Timestamp | None = None
    model: str | None = None
    data: str | None = None
    max_epochs: Count | None = None
    launch_token: str | None = None  # the dedupe key of a launch (a double click starts one run)
    owner: str | None = None  # who launched it: a login's e-mail, or os:<user> (`autotag.access`)
    sweep: str | None = None  # the folder name of the sweep whose trial it is
    resume_from: str | None = None  # checkpoint the next start continues from, relative to the run
    pid: Pid | None = None  # the trainer's process, identified by pid and start time together
    pid_start: Timestamp | None = None
    phase: str | None = None  # what the trainer does now, in words
    cache_done: Count | None = None
    cache_total: Count | None = None
    skipped_clips: Count | None = None
    epoch: Count | None = None  # 1-based: the epoch in progress, or just validated
    validated_epoch: Count | None = None  # 1-based: the epoch whose validation gave last_metrics
    global_step: Count = 0
    steps_per_epoch: Count | None = None
    train_clock: tuple[Timestamp, Count] | None = None  # (time, step) when training began: the ETA's clock
    best_val_loss: float | None = None
    # Every val_* of the best epoch; None where a metric could not be computed (no tag to rank).
    best_val_metrics: dict[str, float | None] = field(default_factory=dict)
    last_metrics: dict[str, float | None] = field(default_factory=dict)
    val_note: str | None = None  # why validation metrics are n/a (no tag of the split can be ranked)
    best_checkpoint: str | None = None  # relative to the run folder
    init_checkpoint: str | None = None  # the earlier run's checkpoint this run started from
    ended_by: str | None = None  # what ended training, in words: early stopping, max_epochs, time budget
    test_roc_auc: float | None = None
    published: str | None = None  # the catalogue name of a published model imported as this run
    error: str | None = None
    forced: bool | None = None  # Stop had to kill the trainer

    #: The phase in which steps are trained: the only one whose pace an ETA may use.
    TRAINING: ClassVar[str] = "training"

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
        return self._status.path

    @property
    def _status(self) -> StatusFile[RunStatus]:
        return StatusFile.of(self.path, RunStatus)

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
        """A sweep's trial: which study and trial this run is (`autotag.training.trial.TrialLink`)."""
        return self.path / "trial.json"

    @property
    def sweep_verdict(self) -> Path:
        """A trial's worker's answer to its last report: prune or go on (`autotag.training.trial.Verdict`)."""
        return self.path / "sweep_verdict.json"

    @property
    def stop_request(self) -> Path:
        """Written by Stop before it signals the trainer; removed by Resume."""
        return self.path / "stop_requested"

    @property
    def robustness(self) -> Path:
        """The robustness report's job files (`autotag.robustness.job.ReportFolder`)."""
        return self.path / "robustness"

    @property
    def robustness_report(self) -> Path:
        """The finished robustness report."""
        return self.path / "robustness.json"

    @property
    def exports(self) -> Path:
        """Exported models (`autotag.serving.export`), unless the user chose another place."""
        return self.path / "export"

    @property
    def is_run(self) -> bool:
        """A run folder autotag made (see `not_a_run`): what is listed is what commands take."""
        return self.not_a_run() is None

    def not_a_run(self) -> str | None:
        """Why this is not a run folder autotag made, or None when it is.

        Every command that takes a run asks this: a bare config.yaml does not make a folder a
        run (a project folder may hold one), and a symlink is never followed to one.
        """
        if self.path.is_symlink():
            return f"{self.path} is a symbolic link; give the run folder it points to"
        if not self.path.is_dir():
            return f"{self.path} does not exist" if not self.path.exists() else f"{self.path} is not a folder"
        missing = [f.name for f in (self.config, self.status_file) if not f.is_file()]
        if missing:
            return f"{self.path} is not a run folder (no {' or '.join(missing)})"
        return None

    #: Entries a file manager or an NFS server leaves in any folder (`.DS_Store`, `.nfs…` while a
    #: replaced file is still open): hidden names and these are litter, not a sign of a project,
    #: except a version-control folder.
    LITTER = frozenset({"Thumbs.db", "desktop.ini"})
    PROJECT_MARKS = frozenset({".git", ".hg", ".svn"})

    def foreign_entries(self) -> list[str]:
        """Names in the folder that no run makes (a project's src/, a .git): their folder is not deleted."""
        layout = {
            f.name
            for f in (
                self.config,
                self.status_file,
                self.labels,
                self.metrics,
                self.data_report,
                self.thresholds,
                self.log,
                self.tb,
                self.checkpoints,
                self.trial,
                self.sweep_verdict,
                self.stop_request,
                self.robustness,
                self.robustness_report,
                self.exports,
            )
        }
        try:
            names = [entry.name for entry in os.scandir(self.path)]
        except OSError:
            return []
        litter = {n for n in names if n in self.LITTER or (n.startswith(".") and n not in self.PROJECT_MARKS)}
        return sorted(set(names) - layout - litter)

    def read_json(self, file: Path) -> Any:
        """One of the folder's JSON files, or None when it is missing or unreadable."""
        try:
            return load_json(file)
        except (OSError, JsonFileError):
            return None

    def read_config(self) -> dict[str, Any]:
        """config.yaml, unvalidated; a field that a run from an older version lacks has the value
        it meant then (`config.OLDER_RUNS`), other newer fields stay absent.

        Raises:
            ConfigError: it cannot be read, or is not the bounded YAML mapping autotag writes.
        """
        raw = read_yaml_file(self.config, f"{self.name}/{self.config.name}")
        if not isinstance(raw, dict):
            raise ConfigError(f"{self.name}/{self.config.name} is not a mapping of field: value")
        return {**OLDER_RUNS, **raw}

    def read_status(self) -> RunStatus:
        """status.json as a record; state "unknown" when it is missing, and with the reason when damaged."""
        return self._status.read()

    def write_status(self, **changes: Any) -> RunStatus:
        """Merge `changes` into status.json atomically; return the new status.

        Raises:
            TypeError: a field that `RunStatus` does not declare.
        """
        return self._status.write(**changes)

    def sweep_orphans(self) -> list[Path]:
        """Delete temporary files in the folder and its checkpoints/ whose writer is dead."""
        from autotag.store.procs import is_alive

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
            `runs_dir`; a cluster job names it so that every rank knows it in advance. Of
            several processes given the same folder at once, exactly one gets it.

    Raises:
        RunError: the runs folder is read-only, full, or cannot be created; `folder`
            already holds something.
    """
    if folder is not None:
        run_dir = absolute(folder)
        check_writable(run_dir.parent)
        if run_dir.is_symlink() or (run_dir.exists() and not run_dir.is_dir()):
            raise RunError(f"{run_dir} is a symbolic link or a file; give a new folder for the run")
        run_dir.mkdir(exist_ok=True)
        if any(run_dir.iterdir()):
            raise RunError(f"run folder {run_dir} is not empty; give a new folder (or resume that run)")
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
    try:  # the claim: of two processes given the same empty folder, one creates config.yaml
        save_config(config, run.config, exclusive=True)
    except FileExistsError:
        raise RunError(f"run folder {run_dir} was just taken by another run; give a new folder") from None
    run.write_status(
        state=RunState.QUEUED,
        created=time.time(),
        max_epochs=config.max_epochs,
        model=config.model,
        data=config.data,
    )
    return run_dir
