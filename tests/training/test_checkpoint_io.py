"""Lightning's checkpoint saves, made atomic: a reader sees the old file or the new one, never half."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from autotag.store.run_folder import RunFolder
from autotag.training.checkpoint_io import AtomicCheckpointIO


def test_checkpoint_writes_are_atomic_and_orphans_are_swept(tmp_path: Path) -> None:
    io = AtomicCheckpointIO()
    target = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"state_dict": {"w": torch.ones(3)}}, target)
    assert torch.load(target, weights_only=True)["state_dict"]["w"].sum() == 3
    assert [p.name for p in target.parent.iterdir()] == ["last.ckpt"]

    class Boom:
        def __reduce__(self):  # noqa: ANN204 - torch.save fails halfway through pickling
            raise RuntimeError("disk went away")

    with pytest.raises(RuntimeError, match="disk went away"):
        io.save_checkpoint({"state_dict": {"w": torch.zeros(3)}, "x": Boom()}, target)
    assert torch.load(target, weights_only=True)["state_dict"]["w"].sum() == 3  # old file intact
    assert [p.name for p in target.parent.iterdir()] == ["last.ckpt"]

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    orphan = target.parent / f".last.ckpt.tmp-{int(dead.stdout)}"
    orphan.write_bytes(b"half a checkpoint")
    live = target.parent / f".best.ckpt.tmp-{os.getpid()}"
    live.write_bytes(b"being written")
    assert RunFolder(tmp_path).sweep_orphans() == [orphan]
    assert live.exists() and not orphan.exists()
