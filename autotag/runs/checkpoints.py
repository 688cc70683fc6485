"""Finding a checkpoint that really loads, for resuming and tagging.

Resume never trusts `ckpt_path="last"` blindly: a checkpoint is used only after it was
read with `weights_only=True` and holds the training state Lightning needs.
"""

from __future__ import annotations

import logging
from pathlib import Path

from autotag.runs.folder import CKPT_DIR, RunError

log = logging.getLogger("autotag.runs.checkpoints")
_RESUME_KEYS = ("state_dict", "loops", "optimizer_states", "epoch", "global_step")


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
    folder = Path(run_dir) / CKPT_DIR
    candidates = sorted(folder.glob("*.ckpt"), key=lambda p: (p.name != "last.ckpt", -p.stat().st_mtime))
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
