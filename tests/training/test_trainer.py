"""The Lightning pieces of a run: a checkpoint callback that follows a moved run folder."""

from pathlib import Path

import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from autotag.training.trainer import RunCheckpoint


def _saved_state(old: Path) -> dict:
    """ModelCheckpoint's state after two epochs in `old`, as a checkpoint holds it."""
    before = ModelCheckpoint(dirpath=old, monitor="val_loss", save_top_k=1, save_last=True)
    state = before.state_dict()
    best = str(old / "best-epoch001-step000004.ckpt")
    state.update(
        best_model_path=best,
        best_model_score=torch.tensor(0.5),
        best_k_models={best: torch.tensor(0.5)},
        kth_best_model_path=best,
        kth_value=torch.tensor(0.5),
        last_model_path=str(old / "last.ckpt"),
    )
    return state


def test_a_moved_checkpoint_folder_keeps_its_best_paths_and_scores(tmp_path: Path) -> None:
    old, new = tmp_path / "runs" / "r" / "checkpoints", tmp_path / "moved" / "r" / "checkpoints"
    after = RunCheckpoint(dirpath=new, monitor="val_loss", save_top_k=1, save_last=True)
    after.load_state_dict(_saved_state(old))
    best = str(new / "best-epoch001-step000004.ckpt")
    assert after.best_model_path == best and after.kth_best_model_path == best
    assert after.last_model_path == str(new / "last.ckpt")
    assert after.best_k_models == {best: torch.tensor(0.5)} and float(after.best_model_score) == 0.5


def test_an_unmoved_folder_and_outside_paths_are_left_as_they_were(tmp_path: Path) -> None:
    old = tmp_path / "r" / "checkpoints"
    state = _saved_state(old)
    state["last_model_path"] = "/elsewhere/last.ckpt"  # never in the checkpoint folder: not ours to move
    same = RunCheckpoint(dirpath=old, monitor="val_loss", save_top_k=1, save_last=True)
    same.load_state_dict(dict(state))
    assert same.best_model_path == state["best_model_path"] and same.last_model_path == "/elsewhere/last.ckpt"
    moved = RunCheckpoint(dirpath=tmp_path / "m", monitor="val_loss", save_top_k=1, save_last=True)
    moved.load_state_dict(dict(state))
    assert moved.last_model_path == "/elsewhere/last.ckpt"


def test_its_state_is_filed_under_model_checkpoints_key(tmp_path: Path) -> None:
    """Checkpoints of runs from before RunCheckpoint existed restore into it (and back)."""
    kwargs = {"dirpath": tmp_path, "monitor": "val_loss", "mode": "min", "save_top_k": 1, "save_last": True}
    assert RunCheckpoint(**kwargs).state_key == ModelCheckpoint(**kwargs).state_key


def test_lightning_lines_that_are_no_news_stay_out_of_train_log() -> None:
    """Its tip and the lines of each checkpoint it restores go; the device it trains on stays."""
    import logging

    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")

    def kept(message: str) -> bool:
        record = logging.LogRecord(rank_zero.name, logging.INFO, __file__, 1, message, None, None)
        return bool(rank_zero.filter(record))

    assert kept("GPU available: False, used: False")
    assert not kept("Restoring states from the checkpoint path at /runs/r/checkpoints/best.ckpt")
    assert not kept("Loaded model weights from the checkpoint at /runs/r/checkpoints/best.ckpt")
    assert not kept("💡 Tip: For seamless cloud logging and experiment tracking, try installing [litlogger]")
