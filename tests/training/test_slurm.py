"""From a run on the laptop to a cluster: `runs export-slurm`, and the guards of multi-node runs."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from autotag.config import load_config
from autotag.runs import manager
from autotag.store.run_folder import RunError, create_run
from autotag.training.distributed import clean_launch_env
from tests.conftest import tiny_config


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "autotag", *args], capture_output=True, text=True, timeout=300, env=env
    )


def _embedded_config(script: str) -> dict:
    return yaml.safe_load(script.split("<<'AUTOTAG_CONFIG'\n")[1].split("\nAUTOTAG_CONFIG")[0])


def test_export_slurm_writes_a_job_of_the_asked_shape_with_the_runs_config(small_csv_dataset: Path) -> None:
    config = tiny_config(small_csv_dataset, lr=3e-4, precision="bf16-mixed")
    run = create_run(config, name="laptop-run")
    done = _cli("runs", "export-slurm", str(run), "--nodes", "2", "--gpus-per-node", "4", "--partition", "gpu")
    assert done.returncode == 0, done.stderr
    script = done.stdout
    for line in (
        "--nodes=2",
        "--ntasks-per-node=4",
        "--gpus-per-node=4",
        "--partition=gpu",
        "--job-name=autotag-laptop-run",
    ):
        assert f"#SBATCH {line}" in script
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0
    job = _embedded_config(script)
    assert {k: job[k] for k in ("num_nodes", "devices", "strategy", "accelerator")} == {
        "num_nodes": 2,
        "devices": 4,
        "strategy": "ddp",
        "accelerator": "gpu",
    }
    unchanged = {"num_nodes", "devices", "strategy", "accelerator", "num_workers"}
    assert {k: v for k, v in job.items() if k not in unchanged} == {
        k: v for k, v in config.model_dump(mode="json").items() if k not in unchanged
    }


@pytest.mark.parametrize(
    ("option", "value"), [("--time", "tomorrow"), ("--partition", "gpu; rm -rf /"), ("--nodes", "0")]
)
def test_export_slurm_refuses_bad_job_settings(small_csv_dataset: Path, option: str, value: str) -> None:
    run = create_run(tiny_config(small_csv_dataset))
    done = _cli("runs", "export-slurm", str(run), option, value)
    assert done.returncode == 2 and done.stdout == ""
    assert value.split(";")[0] in done.stderr or "at least 1" in done.stderr


@pytest.mark.slow
def test_the_job_script_trains_when_run_by_srun(demo_dataset: Path, tmp_path: Path) -> None:
    """The script runs as SLURM would run it (a stand-in `srun` runs each step once, on the CPU)."""
    run = create_run(tiny_config(demo_dataset, max_epochs=1, batch_size=16), name="to-cluster")
    script = tmp_path / "job.sbatch"
    done = _cli("runs", "export-slurm", str(run), "--gpus-per-node", "1", "--out", str(script))
    assert done.returncode == 0, done.stderr
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    srun = bin_dir / "srun"
    srun.write_text('#!/bin/bash\nwhile [[ "$1" == --* ]]; do shift; done\nexec "$@"\n')
    srun.chmod(srun.stat().st_mode | stat.S_IEXEC)
    runs_dir = tmp_path / "cluster-runs"
    env = {
        **clean_launch_env(dict(os.environ)),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "SLURM_JOB_ID": "4242",
        "ACCELERATOR": "cpu",
        "AUTOTAG_RUNS_DIR": str(runs_dir),
        "PYTHON": sys.executable,
    }
    job = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=600, env=env)
    assert job.returncode == 0, job.stderr[-3000:]
    trained = runs_dir / "to-cluster-4242"
    assert f"run folder: {trained}" in job.stdout
    status = json.loads((trained / "status.json").read_text())
    assert status["state"] == "completed", status
    assert load_config(trained / "config.yaml").strategy == "ddp"
    assert json.loads((trained / "metrics.json").read_text())["processes"] == 1


def test_a_multi_node_run_is_not_started_on_this_machine(small_csv_dataset: Path) -> None:
    config = tiny_config(small_csv_dataset, num_nodes=2)
    with pytest.raises(RunError, match="export-slurm"):
        manager.launch(config)
    done = _cli(
        "fit",
        "--data",
        str(small_csv_dataset),
        "--model",
        "tiny",
        "--num-nodes",
        "2",
        env=clean_launch_env(dict(os.environ)),
    )
    assert done.returncode == 2 and "SLURM or torchrun" in done.stderr


def test_fit_into_a_given_run_dir_refuses_one_in_use(small_csv_dataset: Path, tmp_path: Path) -> None:
    used = create_run(tiny_config(small_csv_dataset))
    done = _cli("fit", "--data", str(small_csv_dataset), "--model", "tiny", "--run-dir", str(used))
    assert done.returncode == 2 and "not empty" in done.stderr


def test_a_job_shape_the_config_cannot_hold_is_refused(tmp_path: Path) -> None:
    from autotag.config import make_config
    from autotag.training.slurm import sbatch_script

    config = make_config(data=str(tmp_path), model="tiny")
    with pytest.raises(ValueError, match="devices"):
        sbatch_script(config, "x", tmp_path, nodes=2, gpus_per_node=100)


def test_run_label_keeps_underscores_of_the_name() -> None:
    from autotag.store.run_folder import RunFolder

    assert RunFolder(Path("20250101T000000Z_shortchunk_cnn_abc123")).label == "shortchunk_cnn"
    assert RunFolder(Path("20250101T000000Z_quick-demo_abc123")).label == "quick-demo"
    assert RunFolder(Path("my-folder")).label == "my-folder"
