"""A SLURM job script that trains a run's config on a cluster with Lightning's DDP.

Lightning detects SLURM by itself (ranks from `SLURM_PROCID`, `SLURM_NTASKS`, ...) when
`srun` starts one task per GPU, so the script only has to ask for the right shape of
job (`--ntasks-per-node` equal to the GPUs per node) and run `python -m autotag fit` in
every task with the same `--run-dir`. The config travels inside the script, so the job
needs nothing from the laptop but the data and this project.
"""

from __future__ import annotations

import re
import shlex
from datetime import UTC, datetime
from pathlib import Path

from autotag.config import TrainConfig, make_config
from autotag.store.run_folder import sanitize_name

_TIME = re.compile(r"^(\d+-)?\d{1,2}(:\d{2}){0,2}$")
_PARTITION = re.compile(r"^[A-Za-z0-9_.,-]+$")


def check_job_settings(time_limit: str, partition: str | None) -> None:
    """A time limit in one of SLURM's formats (`MM`, `HH:MM:SS`, `D-HH:MM`, ...) and a partition
    name that is safe in a script line.

    Raises:
        ValueError: either is malformed.
    """
    if partition is not None and not _PARTITION.match(partition):
        raise ValueError(f"partition {partition!r} may only hold letters, digits and . , _ -")
    if not _TIME.match(time_limit):
        raise ValueError(f"time limit {time_limit!r} is not a SLURM time such as 24:00:00 or 2-00:00:00")


def sbatch_script(
    config: TrainConfig,
    name: str,
    project_dir: Path,
    nodes: int,
    gpus_per_node: int,
    time_limit: str = "24:00:00",
    partition: str | None = None,
    cpus_per_gpu: int = 8,
    source: str = "",
) -> str:
    """The job script: feature cache built once by one task, then one DDP training task per GPU.

    Args:
        name: Job and run folder name.
        project_dir: This project's folder on the cluster (with its .venv).
        source: Where the config came from, for the script's header.
    """
    check_job_settings(time_limit, partition)
    label = sanitize_name(name)
    workers = max(config.num_workers, min(4, cpus_per_gpu - 1))  # a GPU starves on one loading process
    job = make_config(  # validated: the cluster's `fit` must accept what the script carries
        **{
            **config.model_dump(),
            "num_nodes": nodes,
            "devices": gpus_per_node,
            "strategy": "ddp",
            "accelerator": "gpu",
            "num_workers": workers,
        }
    )
    header = [
        "#!/bin/bash",
        f"# Written by `python -m autotag runs export-slurm` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
        + (f" from {source}" if source else "")
        + ".",
        f"# Trains {config.model} on {nodes} node(s) x {gpus_per_node} GPU(s) with DDP. Changed from the run's config:",
        f"# num_nodes, devices, strategy=ddp, accelerator=gpu, num_workers={workers} (the rest is as trained).",
        f"#SBATCH --job-name=autotag-{label}",
        f"#SBATCH --nodes={nodes}",
        f"#SBATCH --ntasks-per-node={gpus_per_node}  # one task per GPU: Lightning reads its rank from SLURM",
        f"#SBATCH --gpus-per-node={gpus_per_node}",
        f"#SBATCH --cpus-per-task={cpus_per_gpu}",
        f"#SBATCH --time={time_limit}",
        "#SBATCH --output=autotag-%x-%j.out",
    ]
    if partition:
        header.append(f"#SBATCH --partition={partition}")
    q = shlex.quote
    body = f"""
set -euo pipefail

# Edit these for your cluster. The run folder and the feature cache must be on a file
# system that every node sees (the feature cache is built once, by one task).
PROJECT={q(str(project_dir))}
DATA=${{DATA:-{q(config.data)}}}
export AUTOTAG_RUNS_DIR=${{AUTOTAG_RUNS_DIR:-$PROJECT/runs}}
export AUTOTAG_CACHE_DIR=${{AUTOTAG_CACHE_DIR:-$PROJECT/.cache/features}}
ACCELERATOR=${{ACCELERATOR:-gpu}}
PYTHON=${{PYTHON:-$PROJECT/.venv/bin/python}}

RUN_DIR="$AUTOTAG_RUNS_DIR/{label}-${{SLURM_JOB_ID:-local}}"
CONFIG="$AUTOTAG_RUNS_DIR/.{label}-${{SLURM_JOB_ID:-local}}.yaml"
mkdir -p "$AUTOTAG_RUNS_DIR"
cat > "$CONFIG" <<'AUTOTAG_CONFIG'
{job.to_yaml().rstrip()}
AUTOTAG_CONFIG

cd "$PROJECT"
# 1. Decode every clip once into the shared feature cache (one task, so ranks do not race).
srun --nodes=1 --ntasks=1 "$PYTHON" -m autotag prepare --config "$CONFIG" --data "$DATA"
# 2. Train: one task per GPU, all with the same run folder; rank 0 alone writes it.
srun "$PYTHON" -m autotag fit --config "$CONFIG" --data "$DATA" --accelerator "$ACCELERATOR" \\
    --run-dir "$RUN_DIR"
echo "run folder: $RUN_DIR"
"""
    return "\n".join(header) + "\n" + body
