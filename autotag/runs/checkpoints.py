"""Which checkpoint of a run to use: best first for tagging and export, last first for resume.

Writing checkpoints is the trainer's business (`autotag.training.checkpoint_io`); this
module only chooses among those on disk. Resume never trusts `ckpt_path="last"` blindly:
a checkpoint is used only after it was read with `weights_only=True` and holds the
training state Lightning needs.
"""

from __future__ import annotations

import logging
from pathlib import Path

from autotag.paths import absolute
from autotag.runs.folder import RunError, RunFolder

log = logging.getLogger("autotag.runs.checkpoints")
_RESUME_KEYS = ("state_dict", "loops", "optimizer_states", "epoch", "global_step")


def checkpoint_candidates(run_dir: str | Path) -> list[Path]:
    """The run's checkpoints, best first: the recorded best, other best-*, then last.ckpt.

    Raises:
        RunError: the folder is not a run, or it has no checkpoint yet.
    """
    run = RunFolder(absolute(run_dir))
    if not run.is_run:
        raise RunError(f"{run.path} is not a run folder (no {run.config.name})")
    found: list[Path] = []
    recorded = run.read_status().best_checkpoint
    if recorded and (run.path / recorded).is_file():
        found.append(run.path / recorded)
    best = run.checkpoints.glob(f"{RunFolder.BEST_PREFIX}*.ckpt")
    found += sorted(best, key=lambda p: p.stat().st_mtime, reverse=True)
    found.append(run.last_checkpoint)
    # Only files that really live in this run's checkpoints/ (a symlink out is refused).
    inside = run.checkpoints.resolve()
    found = [p for p in dict.fromkeys(found) if p.is_file() and p.resolve().parent == inside]
    if not found:
        raise RunError(f"run {run.name} has no checkpoint yet (nothing in {run.checkpoints.name}/)")
    return found


def checkpoint_problem(path: Path) -> str | None:
    """Why `path` cannot be resumed from, or None when it can."""
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file fails in many ways; all mean "unusable"
        return f"{type(exc).__name__}: {exc}"
    missing = [k for k in _RESUME_KEYS if k not in ckpt]
    return f"missing {', '.join(missing)}" if missing else None


def resumable_checkpoint(run_dir: Path) -> Path:
    """last.ckpt if it loads, else the newest other checkpoint that does.

    Raises:
        RunError: no checkpoint loads (the run cannot continue; start a new one).
    """
    run = RunFolder(Path(run_dir))
    last = run.last_checkpoint.name
    candidates = sorted(run.checkpoints.glob("*.ckpt"), key=lambda p: (p.name != last, -p.stat().st_mtime))
    problems = []
    for path in candidates:
        problem = checkpoint_problem(path)
        if problem is None:
            if problems:
                log.warning("resuming from %s; skipped %s", path.name, "; ".join(problems))
            return path
        problems.append(f"{path.name} ({problem})")
    detail = f": {'; '.join(problems)}" if problems else " (none saved yet)"
    raise RunError(f"run {Path(run_dir).name} has no checkpoint to resume from{detail}")
