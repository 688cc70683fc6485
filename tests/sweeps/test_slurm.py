"""A sweep as a SLURM array: the exported script's tasks are workers of one study, here against PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from autotag.store.job import RunState
from autotag.sweeps import manager
from autotag.sweeps.results import load_study, trial_rows
from tests.sweeps.test_manager import FIXED_OPTIONS, _autotag

pytestmark = pytest.mark.slow


def test_a_slurm_array_of_two_workers_against_postgresql_runs_n_trials_in_total(
    demo_dataset: Path, tmp_path: Path, postgres_url: str
) -> None:
    """The exported array job, its two tasks run here as SLURM would (one script, two task ids),
    both workers of one study in a real PostgreSQL server."""
    runs_dir = tmp_path / "runs"
    script = tmp_path / "sweep.sbatch"
    done = _autotag(
        "sweep", "export-slurm", "--data", str(demo_dataset), "--trials", "4", "--space", "lr=1e-3:1e-2:log",
        "--storage", postgres_url, "--max-epochs", "2", "--patience", "2", "--name", "array",
        "--runs-dir", str(runs_dir), "--workers", "2", "--out", str(script), *FIXED_OPTIONS,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    [info] = manager.list_sweeps(runs_dir)  # made, not started: the array's tasks run it
    folder = info.folder
    assert info.state is RunState.QUEUED and f"sweep folder: {folder.path}" in done.stderr
    text = script.read_text()
    assert "#SBATCH --array=0-1" in text and f"sweep worker {folder.path}" in text.replace('"$SWEEP"', str(folder.path))
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    env = {**os.environ, "PYTHON": sys.executable, "AUTOTAG_RUNS_DIR": str(runs_dir), "AUTOTAG_MAX_RUNS": "2"}
    tasks = [
        subprocess.Popen(["bash", str(script)], env={**env, "SLURM_ARRAY_TASK_ID": str(i)}, stdout=subprocess.PIPE)
        for i in range(2)
    ]
    try:
        assert [t.wait(timeout=400) for t in tasks] == [0, 0]
    finally:
        for t in tasks:
            t.kill()
    study = load_study(folder)
    assert study._storage.__class__.__name__ != "InMemoryStorage" and folder.storage_url().startswith("postgresql")
    rows = trial_rows(study)
    assert sum(r.state in ("complete", "pruned") for r in rows) == 4, rows
    owners = {t.user_attrs["worker"] for t in study.get_trials() if t.state.name in ("COMPLETE", "PRUNED")}
    assert len(owners) == 2  # both tasks trained trials
    assert not (folder.study_db).exists()  # nothing went to SQLite
    assert manager.derive_state(folder) is RunState.COMPLETED  # workers alone (no driver) end the sweep
