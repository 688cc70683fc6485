"""The run folder's layout and its typed status record."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from autotag.config import make_config
from autotag.store.job import RunState, record_from_json
from autotag.store.run_folder import RunFolder, RunStatus, create_run

ROOT = Path(__file__).parents[2]


def test_status_round_trips_typed_and_keeps_what_it_does_not_know(tmp_path: Path) -> None:
    run = RunFolder(create_run(make_config(data=str(tmp_path), model="tiny"), tmp_path / "runs", "typed"))
    status = run.write_status(state=RunState.RUNNING, pid=12, train_clock=[1.5, 0], last_metrics={"val_loss": 0.3})
    assert status.state is RunState.RUNNING and status.pid == 12 and status.train_clock == (1.5, 0)
    assert status.model == "tiny" and status.last_metrics == {"val_loss": 0.3} and status.global_step == 0
    # A field that a newer version wrote stays on disk through our writes, though we do not show it.
    raw = json.loads(run.status_file.read_text()) | {"from_the_future": 1}
    run.status_file.write_text(json.dumps(raw))
    run.write_status(epoch=2)
    assert json.loads(run.status_file.read_text())["from_the_future"] == 1
    assert run.read_status().epoch == 2


def test_a_misspelt_status_field_fails_where_it_is_written(tmp_path: Path) -> None:
    run = RunFolder(create_run(make_config(data=str(tmp_path), model="tiny"), tmp_path / "runs"))
    with pytest.raises(TypeError, match="no field best_val_los"):
        run.write_status(best_val_los=0.1)
    assert run.read_status().state is RunState.QUEUED


@pytest.mark.parametrize("content", ["", "{not json", "[1, 2]", '{"state": "exploded"}'])
def test_a_missing_or_foreign_status_reads_as_unknown(tmp_path: Path, content: str) -> None:
    run = RunFolder(tmp_path)
    if content:
        run.status_file.write_text(content)
    assert run.read_status().state is RunState.UNKNOWN


def test_to_json_shows_only_what_is_set() -> None:
    status = record_from_json(RunStatus, {"state": "completed", "test_roc_auc": 0.9, "error": None}, "status.json")
    assert status.to_json() == {"state": "completed", "global_step": 0, "test_roc_auc": 0.9}


#: The run folder's file names; `RunFolder` is their one home.
_RUN_FILES = re.compile(
    r"""["'](config\.yaml|status\.json|labels\.json|metrics\.json|data_report\.json|thresholds\.json|"""
    r"""train\.log|stop_requested|checkpoints|tb|last\.ckpt|trial\.json|sweep_verdict\.json)["']"""
)


def test_no_run_file_name_is_spelt_outside_the_run_folder_module() -> None:
    # A sweep's folder and a robustness report's share names with a run's (sweep.log, status.json: store.job's).
    homes = {
        ROOT / "autotag" / p for p in ("store/run_folder.py", "store/job.py", "sweeps/folder.py", "robustness/job.py")
    }
    code = [*ROOT.joinpath("autotag").rglob("*.py"), *ROOT.joinpath("pages").glob("*.py"), ROOT / "app.py"]
    found = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path in code
        if path not in homes
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if _RUN_FILES.search(line)
    ]
    assert not found, "\n".join(found)


def test_no_state_name_is_spelt_outside_run_state() -> None:
    names = "|".join(s.value for s in RunState)
    spelt = re.compile(rf"""(==|!=|in \(|state=)\s*["']({names})["']""")
    code = [*ROOT.joinpath("autotag").rglob("*.py"), *ROOT.joinpath("pages").glob("*.py"), ROOT / "app.py"]
    found = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path in code
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if spelt.search(line)
    ]
    assert not found, "\n".join(found)


def test_a_value_that_cannot_be_computed_is_written_as_null(tmp_path: Path) -> None:
    """JSON has no NaN: a metric with nothing to rank must not fail the trainer's status write."""
    run = RunFolder(tmp_path)
    status = run.write_status(state="running", best_val_loss=float("nan"), last_metrics={"val_roc_auc": float("inf")})
    assert status.state == "running" and status.best_val_loss is None and status.last_metrics == {"val_roc_auc": None}
    assert '"best_val_loss": null' in run.status_file.read_text()
