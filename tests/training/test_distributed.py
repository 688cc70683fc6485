"""DDP through Lightning's own strategy: 2 CPU processes (gloo) against a single process.

Both runs go through the CLI, as a user would start them, so the DDP run's second process
is started the real way: Lightning's launcher re-runs `python -m autotag fit ...`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from autotag.runs.curves import CurveReader
from autotag.training.distributed import check_devices, clean_launch_env, gather_eval_rows, is_rank_zero

pytestmark = pytest.mark.slow

FIT = ["--model", "tiny", "--max-epochs", "2", "--batch-size", "8", "--chunk-seconds", "0.5", "--accelerator", "cpu"]


def _fit(data: Path, run_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "autotag", "fit", "--data", str(data), "--run-dir", str(run_dir), *FIT, *extra]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=clean_launch_env(dict(os.environ)))
    assert done.returncode == 0, done.stderr[-4000:]
    return done


def _layout(run: Path) -> list[str]:
    """The run folder's files, with the step numbers of checkpoint and event file names blanked."""
    names = []
    for path in sorted(run.rglob("*")):
        if path.is_file():
            rel = path.relative_to(run).as_posix()
            if rel.startswith("checkpoints/best-"):
                rel = "checkpoints/best-*.ckpt"
            elif "tfevents" in rel:
                rel = rel.split("events.out.tfevents")[0] + "events.out.tfevents.*"
            names.append(rel)
    return names


def _evaluate_alone(run: Path) -> tuple[float, dict]:
    """val_loss and test scores of a run's best checkpoint, recomputed in this one process."""
    import lightning as L

    from autotag.config import load_config
    from autotag.data.datamodule import TaggingDataModule
    from autotag.data.prepare import prepare_features
    from autotag.training.trainer import build_module

    config = load_config(run / "config.yaml")
    _, dataset, cache = prepare_features(config)
    best = run / json.loads((run / "metrics.json").read_text())["best_checkpoint"]
    module = build_module(config, dataset.labels)
    module.load_state_dict(torch.load(best, map_location="cpu", weights_only=True)["state_dict"])
    dm = TaggingDataModule(config, dataset, cache)
    trainer = L.Trainer(
        accelerator="cpu", devices=1, logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    val_loss = trainer.validate(module, datamodule=dm, verbose=False)[0]["val_loss"]
    trainer.test(module, datamodule=dm, verbose=False)
    return val_loss, module.test_result


def test_ddp_on_two_cpu_processes_matches_a_single_process_run(demo_dataset: Path, tmp_path: Path) -> None:
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    _fit(demo_dataset, single)
    done = _fit(demo_dataset, ddp, "--devices", "2", "--strategy", "ddp")
    assert done.stdout.strip().splitlines()[-1] == str(ddp)  # rank 1 printed nothing

    # Rank 0 alone wrote the run folder: the same files as a single-process run, written by one process.
    assert _layout(ddp) == _layout(single)
    status = json.loads((ddp / "status.json").read_text())
    writers = {int(f.name.split(".")[-2]) for f in (ddp / "tb").glob("events.out.tfevents.*")}
    assert writers == {status["pid"]}  # event files are named after the writing process
    metrics = json.loads((ddp / "metrics.json").read_text())
    alone = json.loads((single / "metrics.json").read_text())
    assert metrics.keys() == alone.keys()
    assert (metrics["processes"], alone["processes"]) == (2, 1)
    assert status["state"] == "completed" and status["test_roc_auc"] == metrics["roc_auc_macro"]
    log = (ddp / "train.log").read_text()
    assert log.count("training tiny on") == 1 and log.count("features computed") <= 1

    # Each rank saw half of the training batches per epoch.
    assert metrics["global_step"] * 2 == pytest.approx(alone["global_step"], abs=2)
    curves = [CurveReader(run / "tb") for run in (ddp, single)]
    assert all(c.refresh() > 0 for c in curves) and curves[0].series.keys() == curves[1].series.keys()

    # Metrics were synced over both ranks: the same checkpoint scored in one process agrees.
    val_loss, test = _evaluate_alone(ddp)
    assert metrics["best_val_loss"] == pytest.approx(val_loss, abs=1e-5)
    assert metrics["roc_auc_macro"] == pytest.approx(test["roc_auc_macro"], abs=1e-6)
    assert metrics["pr_auc_macro"] == pytest.approx(test["pr_auc_macro"], abs=1e-6)
    assert metrics["per_tag"].keys() == test["per_tag"].keys()


def test_gather_eval_rows_counts_each_chunk_once_in_chunk_order() -> None:
    """Lightning pads a rank's validation shard by repeating chunks: they must count once."""
    logits = torch.tensor([[3.0], [1.0], [2.0], [1.0]])
    rows = [(logits[:2], torch.ones(2, 1), torch.tensor([1, 0]), torch.tensor([3, 1]))]
    rows.append((logits[2:], torch.zeros(2, 1), torch.tensor([0, 0]), torch.tensor([2, 1])))
    out_logits, targets, clips = gather_eval_rows(rows, n_tags=1)
    assert out_logits.flatten().tolist() == [1.0, 2.0, 3.0] and clips.tolist() == [0, 0, 1]
    assert targets.flatten().tolist() == [1.0, 0.0, 1.0]
    empty = gather_eval_rows([], n_tags=4)
    assert empty[0].shape == (0, 4) and empty[2].dtype == torch.long


@pytest.mark.parametrize(
    ("env", "zero"),
    [
        ({}, True),
        ({"LOCAL_RANK": "0", "NODE_RANK": "0"}, True),
        ({"LOCAL_RANK": "1"}, False),
        ({"SLURM_PROCID": "3"}, False),
    ],
)
def test_rank_zero_is_read_from_every_launcher_variable(monkeypatch: pytest.MonkeyPatch, env: dict, zero: bool) -> None:
    for name in ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert is_rank_zero() is zero


@pytest.mark.parametrize(
    ("gpus", "settings", "refusal"),
    [
        (0, {"accelerator": "gpu"}, "accelerator is gpu, but torch finds no GPU on this machine"),
        (1, {"accelerator": "gpu", "devices": 2}, "devices is 2 with accelerator gpu, but this machine has 1 GPU(s)"),
        (1, {"accelerator": "gpu"}, None),
        (0, {"accelerator": "auto", "devices": 2}, None),  # two CPU processes
        (0, {"accelerator": "cpu"}, None),
    ],
)
def test_a_gpu_run_needs_the_gpus_it_asks_for(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, gpus: int, settings: dict, refusal: str | None
) -> None:
    from autotag.config import make_config
    from autotag.store.run_folder import RunError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpus > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    config = make_config(data=str(tmp_path), model="tiny", **settings)
    if refusal is None:
        check_devices(config)
    else:
        with pytest.raises(RunError, match=re.escape(refusal)):
            check_devices(config)


def _ranks_alive(run: Path) -> list[int]:
    """Pids of processes whose command line names this run (its trainer and its DDP ranks)."""
    alive = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(run).encode() in (proc / "cmdline").read_bytes():
                state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
                alive += [int(proc.name)] if state not in ("Z", "X") else []
        except OSError:
            continue
    return alive


def test_a_background_ddp_run_stops_with_all_its_ranks_and_resumes(demo_dataset: Path) -> None:
    from autotag.runs import manager
    from tests.conftest import tiny_config, wait_for_run

    config = tiny_config(demo_dataset, accelerator="cpu", devices=2, strategy="ddp", max_epochs=200, patience=100)
    run = manager.launch(config)
    wait_for_run(run, lambda s: s["state"] == "running" and s.get("epoch", 0) >= 2)
    assert len(_ranks_alive(run)) == 2  # rank 0 and the rank Lightning started
    assert manager.stop(run) == "stopped"
    assert _ranks_alive(run) == []

    manager.resume(run)
    wait_for_run(run, lambda s: s["state"] == "running" and s.get("phase") == "training" and s.get("epoch", 0) >= 4)
    assert manager.stop(run) == "stopped" and _ranks_alive(run) == []
    assert "Traceback" not in (run / "train.log").read_text()
