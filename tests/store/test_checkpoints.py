"""Which checkpoints are a run's own, in which order, and which one a resume continues from."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from autotag.config import make_config
from autotag.store.checkpoints import (
    checkpoint_candidates,
    checkpoint_files,
    own_checkpoint,
    own_checkpoints,
    resumable_checkpoint,
)
from autotag.store.run_folder import RunError, RunFolder, create_run

RESUMABLE = {"state_dict": {}, "loops": {}, "optimizer_states": [], "epoch": 1, "global_step": 2}


@pytest.fixture
def run(tmp_path: Path) -> RunFolder:
    folder = RunFolder(create_run(make_config(data=str(tmp_path), model="tiny")))
    folder.checkpoints.mkdir()
    return folder


def _save(path: Path, mtime: int, content: dict | None = None) -> Path:
    torch.save(content if content is not None else RESUMABLE, path)
    os.utime(path, (mtime, mtime))
    return path


def test_only_regular_files_directly_in_the_runs_checkpoints_are_its_own(run: RunFolder, tmp_path: Path) -> None:
    own = _save(run.checkpoints / "best-epoch001-step000010.ckpt", 100)
    foreign = _save(tmp_path / "foreign.ckpt", 100)
    (run.checkpoints / "link.ckpt").symlink_to(foreign)
    (run.checkpoints / "inner-link.ckpt").symlink_to(own)  # a symlink even to an own file is not one
    (run.checkpoints / "sub").mkdir()
    _save(run.checkpoints / "sub" / "deeper.ckpt", 100)
    given = [
        own,
        "checkpoints/best-epoch001-step000010.ckpt",  # the same file, relative: listed once
        "checkpoints/link.ckpt",
        "checkpoints/inner-link.ckpt",
        "checkpoints/sub/deeper.ckpt",
        "checkpoints/sub",
        f"../{tmp_path.name}/foreign.ckpt",
        str(foreign),
        "checkpoints/gone.ckpt",
    ]
    assert [c.path for c in own_checkpoints(run, given)] == [own]
    assert own_checkpoint(run.path, "checkpoints/best-epoch001-step000010.ckpt") == own
    for bad in given[2:]:
        with pytest.raises(RunError, match="is not one of this run's checkpoints"):
            own_checkpoint(run.path, bad)


def test_candidates_are_the_recorded_best_then_newer_best_then_last(run: RunFolder) -> None:
    old = _save(run.checkpoints / "best-epoch001-step000010.ckpt", 100)
    new = _save(run.checkpoints / "best-epoch002-step000020.ckpt", 200)
    last = _save(run.last_checkpoint, 300)
    run.write_status(best_checkpoint=str(old.relative_to(run.path)))
    assert checkpoint_candidates(run.path) == [old, new, last]
    assert [c.mtime_ns for c in checkpoint_files(run.path)] == [100 * 10**9, 200 * 10**9, 300 * 10**9]
    run.write_status(best_checkpoint="../../elsewhere/best.ckpt")  # status.json is no authority on files
    assert checkpoint_candidates(run.path) == [new, old, last]


def test_resume_skips_a_symlinked_last_checkpoint_for_the_newest_own_one(run: RunFolder, tmp_path: Path) -> None:
    best = _save(run.checkpoints / "best-epoch001-step000010.ckpt", 100)
    run.last_checkpoint.symlink_to(_save(tmp_path / "foreign.ckpt", 300))  # would load: it is a good checkpoint
    assert resumable_checkpoint(run.path) == best
    best.unlink()
    with pytest.raises(RunError, match=r"no checkpoint to resume from \(none saved yet\)"):
        resumable_checkpoint(run.path)
