"""The runs table's pieces: which config fields differ between runs."""

from __future__ import annotations

from pathlib import Path

from autotag.config import make_config
from autotag.runs.table import config_differences
from autotag.store.run_folder import create_run


def test_config_differences_name_only_the_fields_that_differ(tmp_path: Path) -> None:
    a = create_run(make_config(data=str(tmp_path), model="tiny", lr=1e-3), tmp_path / "runs", "a")
    b = create_run(make_config(data=str(tmp_path), model="tiny", lr=1e-4), tmp_path / "runs", "b")
    c = create_run(make_config(data=str(tmp_path), model="fcn", lr=1e-4), tmp_path / "runs", "c")
    assert config_differences([a, b]) == {"lr": {a.name: 1e-3, b.name: 1e-4}}
    diff = config_differences([a, b, c])
    assert diff["model"] == {a.name: "tiny", b.name: "tiny", c.name: "fcn"} and "data" not in diff
    assert config_differences([a, a]) == {}
