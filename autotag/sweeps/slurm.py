"""A SLURM array job whose tasks are workers of one sweep, sharing its study in PostgreSQL.

Each array task runs `python -m autotag sweep worker SWEEP` on its own machine: it asks the
study for trials and trains them there, as the laptop's driver does. The study must live in
a database server that every task reaches (`--storage postgresql+psycopg://...`): SQLite's
locks do not hold on a network file system. The sweep folder (its sweep.yaml) and the runs
folder must be on a file system every node sees, so create the sweep on the cluster.
"""

from __future__ import annotations

import shlex
from datetime import UTC, datetime
from pathlib import Path

from autotag.sweeps.folder import SweepError, SweepFolder
from autotag.training.slurm import check_job_settings


def check_shared_storage(url: str | None) -> None:
    """Raises: SweepError: `url` is not a database server that workers on several machines can share."""
    if url is None or url.startswith("sqlite"):
        raise SweepError(
            "a SLURM array's workers run on several machines and share the study through a database "
            "server, and SQLite's locks do not hold on a network file system: create the sweep with "
            "--storage postgresql+psycopg://USER@HOST/DATABASE"
        )


def sweep_sbatch_script(
    folder: SweepFolder,
    project_dir: Path,
    workers: int,
    gpus_per_worker: int = 1,
    cpus_per_worker: int = 8,
    time_limit: str = "24:00:00",
    partition: str | None = None,
) -> str:
    """The array job: `workers` tasks, each a sweep worker with its GPUs.

    Raises:
        SweepError: the sweep keeps its study in SQLite, or a job setting is malformed.
    """
    spec = folder.spec()
    check_shared_storage(spec.storage)
    try:
        check_job_settings(time_limit, partition)
    except ValueError as exc:
        raise SweepError(str(exc)) from None
    q = shlex.quote
    header = [
        "#!/bin/bash",
        f"# Written by `python -m autotag sweep export-slurm` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC.",
        f"# {workers} workers of sweep {folder.name}: each asks the study for trials and trains them",
        f"# on its node, {spec.parallel} at a time; together they run {spec.trials} finished trials.",
        f"#SBATCH --job-name=autotag-sweep-{folder.label}",
        f"#SBATCH --array=0-{workers - 1}",
        "#SBATCH --ntasks=1",
        f"#SBATCH --gpus-per-task={gpus_per_worker}",
        f"#SBATCH --cpus-per-task={cpus_per_worker}",
        f"#SBATCH --time={time_limit}",
        "#SBATCH --output=autotag-%x-%A_%a.out",
    ]
    if partition:
        header.append(f"#SBATCH --partition={partition}")
    body = f"""
set -euo pipefail

# Edit these for your cluster. The sweep folder, the runs folder and the feature cache
# must be on a file system that every node sees.
PROJECT={q(str(project_dir))}
SWEEP={q(str(folder.path))}
export AUTOTAG_RUNS_DIR=${{AUTOTAG_RUNS_DIR:-{q(spec.runs_dir)}}}
export AUTOTAG_CACHE_DIR=${{AUTOTAG_CACHE_DIR:-$PROJECT/.cache/features}}
export AUTOTAG_MAX_RUNS=${{AUTOTAG_MAX_RUNS:-{spec.parallel}}}
PYTHON=${{PYTHON:-$PROJECT/.venv/bin/python}}

cd "$PROJECT"
echo "sweep worker ${{SLURM_ARRAY_TASK_ID:-0}} on $(hostname)"
"$PYTHON" -m autotag sweep worker "$SWEEP"
"""
    return "\n".join(header) + "\n" + body
