"""Which checkpoint of a run to use: best first for tagging and export, last first for resume.

Writing checkpoints is the trainer's business (`autotag.training.checkpoint_io`); this
module only chooses among those on disk. Resume never trusts `ckpt_path="last"` blindly:
a checkpoint is used only after it was read with `weights_only=True` and holds the
training state Lightning needs.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autotag.paths import absolute
from autotag.store.files import TMP_MARK
from autotag.store.run_folder import RunError, RunFolder

log = logging.getLogger("autotag.store.checkpoints")
_RESUME_KEYS = ("state_dict", "loops", "optimizer_states", "epoch", "global_step")


@dataclass(frozen=True)
class CheckpointFile:
    """One of a run's own checkpoint files, with its modification time when it was listed."""

    path: Path
    mtime_ns: int


def own_checkpoints(run: RunFolder, paths: Iterable[str | Path]) -> list[CheckpointFile]:
    """Those of `paths` (relative to the run folder, or absolute) that are the run's own checkpoint files.

    The one rule of every loader (tagging, export, reports, resume, a trainer's `--resume`,
    fine-tuning from another run): the README promises that checkpoints load only from the
    run's own folder. Own means a regular file, not a symlink, whose real path lies directly
    in the run's checkpoints/ folder, which is not a symlink out either. A file that is gone
    by the time it is looked at is left out, not raised: ModelCheckpoint deletes the previous
    best each time it saves a new one, while the Tag page or a resume may be listing them.

    Returns:
        Each own file once (as `run.checkpoints / name`), in the order of `paths`.
    """
    inside = run.path.resolve() / run.checkpoints.name
    found: dict[Path, CheckpointFile] = {}
    for given in paths:
        path = run.path / given  # an absolute `given` stays itself
        try:
            info = path.lstat()
            real = path.resolve(strict=True)
        except (OSError, RuntimeError, ValueError):  # gone, unreadable, a symlink loop, a NUL in a hostile name
            continue
        own = run.checkpoints / real.name
        if stat.S_ISREG(info.st_mode) and real.parent == inside and own not in found:
            found[own] = CheckpointFile(own, info.st_mtime_ns)
    return list(found.values())


def checkpoint_files(run_dir: str | Path) -> list[CheckpointFile]:
    """The run's own checkpoints, best first: the recorded best, other best-* (newest first), then last.ckpt.

    Raises:
        RunError: the folder is not a run, or it has no checkpoint yet.
    """
    run = RunFolder(absolute(run_dir))
    problem = run.not_a_run()
    if problem:
        raise RunError(problem)
    recorded = run.read_status().best_checkpoint
    best = own_checkpoints(run, run.checkpoints.glob(f"{RunFolder.BEST_PREFIX}*.ckpt"))
    best.sort(key=lambda c: c.mtime_ns, reverse=True)
    listed = [
        *own_checkpoints(run, [recorded] if recorded else []),
        *best,
        *own_checkpoints(run, [run.last_checkpoint]),
    ]
    found = list({c.path: c for c in listed}.values())  # each once, at its first place
    if not found:
        raise RunError(f"run {run.name} has no checkpoint yet (nothing in {run.checkpoints.name}/)")
    return found


def checkpoint_candidates(run_dir: str | Path) -> list[Path]:
    """The paths of `checkpoint_files(run_dir)`: the run's own checkpoints, best first.

    Raises:
        RunError: the folder is not a run, or it has no checkpoint yet.
    """
    return [c.path for c in checkpoint_files(run_dir)]


def own_checkpoint(run_dir: str | Path, path: str | Path) -> Path:
    """`path` (relative to the run folder) if it is one of the run's own checkpoint files.

    For a path that arrives from outside this module: a trainer's `--resume`, which comes
    from status.json's `resume_from`.

    Raises:
        RunError: it is not (outside the run's checkpoints/, a symlink, not a file, gone).
    """
    run = RunFolder(absolute(run_dir))
    found = own_checkpoints(run, [path])
    if not found:
        raise RunError(f"{path} is not one of this run's checkpoints (a file in {run.checkpoints.name}/ of {run.name})")
    return found[0].path


def checkpoint_problem(path: Path) -> str | None:
    """Why `path` cannot be resumed from, or None when it can."""
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file fails in many ways; all mean "unusable"
        return f"{type(exc).__name__}: {exc}"
    missing = [k for k in _RESUME_KEYS if k not in ckpt]
    return f"missing {', '.join(missing)}" if missing else None


def has_checkpoint(run_dir: str | Path) -> bool:
    """Whether the run has saved a checkpoint of its own yet (none is loaded to say so)."""
    run = RunFolder(absolute(run_dir))
    return bool(own_checkpoints(run, run.checkpoints.glob("*.ckpt")))


def resumable_checkpoint(run_dir: Path) -> Path:
    """last.ckpt if it loads, else the newest other checkpoint that does (the run's own files only).

    Raises:
        RunError: no checkpoint loads (the run cannot continue; start a new one).
    """
    run = RunFolder(absolute(run_dir))
    last = run.last_checkpoint.name
    candidates = own_checkpoints(run, run.checkpoints.glob("*.ckpt"))
    candidates.sort(key=lambda c: (c.path.name != last, -c.mtime_ns))
    problems = []
    for path in (c.path for c in candidates):
        problem = checkpoint_problem(path)
        if problem is None:
            if problems:
                log.warning("resuming from %s; skipped %s", path.name, "; ".join(problems))
            return path
        problems.append(f"{path.name} ({problem})")
    detail = f": {'; '.join(problems)}" if problems else " (none saved yet)"
    raise RunError(f"run {Path(run_dir).name} has no checkpoint to resume from{detail}")


def save_atomic(checkpoint: dict[str, Any], path: Path) -> None:
    """`torch.save` so that a kill leaves the old file or the new one, never half of one.

    Lightning's own atomic save stages the file in the system's temporary folder, which may
    be another filesystem: its final move is then a copy a kill can interrupt. Here the
    temporary file lies next to its target, is fsynced, and replaces it with one `os.replace`.
    """
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}")
    try:
        with tmp.open("wb") as fh:
            torch.save(checkpoint, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
