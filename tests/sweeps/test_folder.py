"""A sweep's folder: sweep.yaml read like a config, its status typed, its name kept for its trials."""

from __future__ import annotations

from pathlib import Path

import pytest

from autotag.store.job import RunState
from autotag.sweeps.folder import SweepError, SweepFolder, SweepSpec, create_sweep

SPEC = SweepSpec(
    runs_dir="", study="", storage=None, space=["lr=1e-4:1e-2:log"], fixed={"data": "d"}, trials=4, parallel=1
)


def test_a_new_sweep_is_queued_with_its_spec_and_its_folder_as_study_name(tmp_path: Path) -> None:
    folder = create_sweep(SweepSpec(**{**SPEC.__dict__, "runs_dir": str(tmp_path)}), name="lr search")
    assert folder.path.parent == tmp_path / "sweeps" and folder.label == "lr-search"
    spec = folder.spec()
    assert spec.study == folder.name and spec.trials == 4 and spec.direction == "minimize"
    assert folder.storage_url() == f"sqlite:///{folder.study_db}"
    status = folder.read_status()
    assert status.state is RunState.QUEUED and status.created is not None


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("trials: [", "sweep.yaml"),
        ("- a list", "not a mapping of field: value"),
        ("runs_dir: r\nstudy: s\nunknown: 1", "not a sweep's"),
    ],
)
def test_a_damaged_sweep_yaml_is_one_message_naming_it(tmp_path: Path, text: str, why: str) -> None:
    folder = SweepFolder(tmp_path)
    folder.spec_file.write_text(text)
    with pytest.raises(SweepError, match=why):
        folder.spec()


def test_its_status_is_typed_merged_and_damage_reads_as_unknown(tmp_path: Path) -> None:
    folder = SweepFolder(tmp_path)
    assert folder.read_status().state is RunState.UNKNOWN  # no status.json yet
    folder.write_status(state=RunState.RUNNING, counts={"complete": 2})
    folder.write_status(counts={"complete": 3})
    assert folder.read_status().state is RunState.RUNNING and folder.read_status().counts == {"complete": 3}
    with pytest.raises(TypeError, match="no field trails"):
        folder.write_status(trails=3)
    folder.status_file.write_text('{"state": "running", "pid": "abc"}')
    damaged = folder.read_status()
    assert damaged.state is RunState.UNKNOWN and "pid" in damaged.error
