"""Roles and ownership, enforced by the library functions the pages call; every action in the audit log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autotag.access import AUDIT_FILE, AccessDenied, Actor, allowed, read_log, record
from autotag.runs import manager
from autotag.store.job import RunState
from autotag.store.run_folder import RunFolder, create_run
from tests.conftest import tiny_config

ADA = Actor("ada@example.org", "admin", "dashboard")
TOM = Actor("tom@example.org", "trainer", "dashboard")
TINA = Actor("tina@example.org", "trainer", "dashboard")
VIC = Actor("vic@example.org", "viewer", "dashboard")


def test_who_may_do_what() -> None:
    for action in ("launch", "stop", "resume", "delete", "export", "robustness", "sweep"):
        assert allowed(ADA, action, TOM.name) is None and allowed(Actor.local(), action, TOM.name) is None
        assert "viewers may look and tag" in allowed(VIC, action, VIC.name)
    assert allowed(TOM, "launch", None) is None and allowed(TOM, "sweep", None) is None
    assert allowed(TOM, "delete", TOM.name) is None
    assert "launched by tina@example.org" in allowed(TOM, "delete", TINA.name)
    assert "before owners were recorded" in allowed(TOM, "stop", None)  # an old run: admins only
    assert Actor.local().name.startswith("os:") and Actor.local().role == "local"


def _finished_run(runs: Path, owner: str | None) -> Path:
    run = create_run(tiny_config(runs), runs, "done")
    RunFolder(run).write_status(state=RunState.COMPLETED, owner=owner)
    return run


def test_a_viewer_launches_and_deletes_nothing_and_each_refusal_is_logged(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    run = _finished_run(runs, TOM.name)
    with pytest.raises(AccessDenied, match="vic@example.org \\(viewer\\) may not launch"):
        manager.launch(tiny_config(tmp_path), runs, name="sneaky", actor=VIC)
    with pytest.raises(AccessDenied, match="may not delete"):
        manager.delete(run, actor=VIC)
    assert run.is_dir() and [p.name for p in runs.iterdir() if RunFolder(p).is_run] == [run.name]
    log = read_log(runs)
    assert [(e["who"], e["action"], e["outcome"]) for e in log] == [
        (VIC.name, "delete", "refused"),
        (VIC.name, "launch", "refused"),
    ]
    assert log[0]["target"] == run.name and "viewers may look" in log[0]["why"]


def test_a_trainer_deletes_their_own_run_only_and_an_admin_any(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    mine, theirs = _finished_run(runs, TOM.name), _finished_run(runs, TINA.name)
    with pytest.raises(AccessDenied, match="launched by tina@example.org"):
        manager.delete(theirs, actor=TOM)
    manager.delete(mine, actor=TOM)
    manager.delete(theirs, actor=ADA)
    assert not mine.exists() and not theirs.exists()
    assert [(e["who"], e["action"], e["outcome"]) for e in read_log(runs)] == [
        (ADA.name, "delete", "ok"),
        (TOM.name, "delete", "ok"),
        (TOM.name, "delete", "refused"),
    ]


def test_a_launch_records_its_owner_and_the_cli_records_the_os_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(manager, "_spawn", lambda *_: None)  # this test needs the folders, not trainers
    runs = tmp_path / "runs"
    by_tom = manager.launch(tiny_config(tmp_path), runs, name="t", actor=TOM)
    by_hand = manager.launch(tiny_config(tmp_path), runs, name="h")
    assert RunFolder(by_tom).read_status().owner == TOM.name
    assert RunFolder(by_hand).read_status().owner == Actor.local().name
    assert [(e["who"], e["via"]) for e in read_log(runs)] == [(Actor.local().name, "cli"), (TOM.name, "dashboard")]


def test_the_audit_log_is_one_json_object_per_line_and_survives_a_torn_line(tmp_path: Path) -> None:
    for i in range(3):
        record(tmp_path, TOM, "launch", tmp_path / f"run{i}")
    with (tmp_path / AUDIT_FILE).open("a") as fh:
        fh.write('{"who": "half')  # a writer killed mid-line
    lines = (tmp_path / AUDIT_FILE).read_text().splitlines()
    assert all(json.loads(line)["action"] == "launch" for line in lines[:3])
    assert [e["target"] for e in read_log(tmp_path)] == ["run2", "run1", "run0"]
    assert read_log(tmp_path / "nowhere") == []
