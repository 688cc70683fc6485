"""Run folders as an attacker or a careless user leaves them: folders that only look like runs,
symlinks, names that exist only in the current folder, damaged status.json, two claims at once.

Each probe ends in exit status 2 and one line (or a run shown as unknown), and nothing is
deleted, written or lost.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autotag.cli.main import main
from autotag.config import make_config
from autotag.runs import manager
from autotag.runs.table import summarize
from autotag.store.job import RunState
from autotag.store.run_folder import RunError, RunFolder, RunStatus, create_run, default_runs_dir


def _run(runs: Path, data: Path, state: str = "completed") -> Path:
    run = create_run(make_config(data=str(data), model="tiny"), runs)
    RunFolder(run).write_status(state=state)
    return run


def _look_alike(folder: Path) -> Path:
    """A user's project folder that happens to hold a config.yaml and a src/ (the reported data loss)."""
    (folder / "src").mkdir(parents=True)
    (folder / "src" / "main.py").write_text("print('my work')\n")
    (folder / "config.yaml").write_text("a: 1\n")
    return folder


def _cli(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_error(code: int, err: str) -> None:
    assert code == 2, err
    assert err.startswith("autotag: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err


def _tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# --- 1. `runs delete` deletes only real run folders ---------------------------------------------------------


def test_a_folder_with_a_config_yaml_is_not_a_run_and_is_not_deleted(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = _look_alike(tmp_path / "x")
    before = _tree(project)
    _one_line_error(*_cli(capsys, "runs", "delete", str(project))[::2])
    monkeypatch.chdir(project)
    _one_line_error(*_cli(capsys, "runs", "delete", ".")[::2])
    assert _tree(project) == before
    assert not (tmp_path / "audit.jsonl").exists()  # nothing written beside it either


def test_a_look_alike_with_a_status_json_and_foreign_files_is_not_deleted(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    project = _look_alike(tmp_path / "x")
    (project / "status.json").write_text('{"state": "completed"}')
    code, _, err = _cli(capsys, "runs", "delete", str(project))
    _one_line_error(code, err)
    assert "src" in err and "no run makes" in err
    assert (project / "src" / "main.py").is_file()


def test_a_bare_name_never_falls_back_to_the_current_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Even a real run folder in the current folder is not what a bare name means.
    work = tmp_path / "work"
    here = _run(work, tmp_path)
    monkeypatch.chdir(work)
    runs = tmp_path / "runs"
    for argv in (
        ["runs", "delete", here.name],
        ["runs", "stop", here.name],
        ["runs", "resume", here.name],
        ["runs", "show", here.name],
        ["export", here.name, "--format", "onnx"],
        ["tag", "--run", here.name, "clip.wav"],
        ["evaluate", here.name, "--data", str(tmp_path)],
    ):
        code, _, err = _cli(capsys, *argv, "--runs-dir", str(runs))
        _one_line_error(code, err)
        assert f"no run '{here.name}' in the runs folder" in err and f"./{here.name}" in err  # and how to say it
    assert RunFolder(here).read_status().state == "completed" and here.is_dir()


def test_a_symlink_in_the_runs_folder_is_neither_listed_nor_followed(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = _run(tmp_path / "elsewhere", tmp_path)  # a real run, outside this runs folder
    runs = default_runs_dir()
    runs.mkdir(parents=True)
    (runs / "evil").symlink_to(elsewhere)
    monkeypatch.chdir(tmp_path)
    for ref in ("evil", str(runs / "evil"), os.path.relpath(runs / "evil")):
        _one_line_error(*_cli(capsys, "runs", "delete", ref)[::2])
    assert elsewhere.is_dir() and (runs / "evil").is_symlink()
    assert [r.name for r in manager.list_runs()] == []


def test_delete_refuses_the_current_folder_and_a_damaged_status(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    inside = _run(default_runs_dir(), tmp_path)
    monkeypatch.chdir(RunFolder(inside).checkpoints.parent)
    _one_line_error(*_cli(capsys, "runs", "delete", inside.name)[::2])
    monkeypatch.chdir(tmp_path)
    damaged = _run(default_runs_dir(), tmp_path)
    RunFolder(damaged).status_file.write_text("not json")
    code, _, err = _cli(capsys, "runs", "delete", damaged.name)
    _one_line_error(code, err)
    assert "status.json is not one autotag wrote" in err
    assert inside.is_dir() and damaged.is_dir()


def test_a_real_run_is_deleted_by_name_and_by_path(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    by_name, by_path = _run(default_runs_dir(), tmp_path), _run(tmp_path / "other", tmp_path, state="stopped")
    RunFolder(by_name).checkpoints.mkdir()
    (RunFolder(by_name).checkpoints / "last.ckpt").write_bytes(b"x")
    assert _cli(capsys, "runs", "delete", by_name.name)[0] == 0
    assert _cli(capsys, "runs", "delete", str(by_path))[0] == 0
    assert not by_name.exists() and not by_path.exists()


def test_the_library_delete_checks_too(tmp_path: Path) -> None:
    """A page or a script that calls `manager.delete` with any path gets the same refusal."""
    project = _look_alike(tmp_path / "x")
    (project / "status.json").write_text('{"state": "completed"}')
    with pytest.raises(RunError, match="no run makes"):
        manager.delete(project)
    link = tmp_path / "link"
    link.symlink_to(_run(tmp_path / "runs", tmp_path))
    with pytest.raises(RunError, match="symbolic link"):
        manager.delete(link)
    assert (project / "src").is_dir() and link.resolve().is_dir()


# --- 3. a damaged status.json shows one run as unknown and breaks nothing else ---------------------------------

DAMAGED = {
    "wrong type of clock": '{"state": "completed", "train_clock": 5}',
    "pid not a number": '{"state": "running", "pid": "abc"}',
    "pid no OS has": '{"state": "running", "pid": 1099511627776}',
    "a time beyond any date": '{"state": "completed", "created": 1e300}',
    "NaN where a number goes": '{"state": "completed", "best_val_loss": NaN}',
    "state not a string": '{"state": ["running"]}',
    "an unknown state": '{"state": "exploded"}',
    "a list, not an object": "[1, 2]",
    "nested 200,000 deep": "[" * 200_000,
    "a pid that is true": '{"state": "running", "pid": true, "pid_start": 5.0}',
    "not JSON": "\x00\xff garbage",
    "huge": '{"state": "completed", "note": "' + "x" * (2 << 20) + '"}',
}


@pytest.mark.parametrize("content", DAMAGED.values(), ids=DAMAGED.keys())
def test_a_damaged_status_is_one_unknown_run_in_the_listing(
    content: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    good, bad = _run(default_runs_dir(), tmp_path), _run(default_runs_dir(), tmp_path)
    RunFolder(bad).status_file.write_text(content, encoding="utf-8", errors="surrogateescape")
    status = RunFolder(bad).read_status()
    assert status.state is RunState.UNKNOWN and status.error and len(status.error) < 300
    code, out, err = _cli(capsys, "runs", "list")
    assert code == 0, err
    lines = {line.split()[0]: line.split()[1] for line in out.splitlines()[1:]}
    assert lines == {good.name: "completed", bad.name: "unknown"}
    assert _cli(capsys, "runs", "show", bad.name)[0] == 0
    summarize(next(r for r in manager.list_runs() if r.path == bad))  # the Runs page's row


def test_every_page_renders_with_a_damaged_run_among_good_ones(tmp_path: Path, trained_run: Path) -> None:
    """Damaged status.json, metrics.json, config.yaml, thresholds.json and robustness.json: every
    page draws, the Runs page shows each run, and the Train page refuses the damaged run as a start."""
    import shutil

    from streamlit.testing.v1 import AppTest

    from tests.test_app import APP, PAGES

    good = default_runs_dir() / trained_run.name
    shutil.copytree(trained_run, good)
    damaged = []
    for content in ('{"state": "completed", "train_clock": 5}', '{"state": "running", "pid": "abc"}'):
        damaged.append(_run(default_runs_dir(), tmp_path))
        RunFolder(damaged[-1]).status_file.write_text(content)
    odd = default_runs_dir() / (trained_run.name + "-odd")
    shutil.copytree(trained_run, odd)
    RunFolder(odd).metrics.write_text('{"per_tag": [1, 2], "roc_auc_macro": "high"}')
    RunFolder(odd).config.write_bytes(bytes(range(256)))
    RunFolder(odd).thresholds.write_text('{"thresholds": {"piano": "high", "drums": NaN}}')
    RunFolder(odd).robustness_report.write_text('{"clean": {"roc_auc_macro": "x"}, "noise": 5}')
    for page in PAGES:
        at = AppTest.from_file(APP, default_timeout=60)
        at.run()
        if page != "pages/train.py":
            at.switch_page(page).run()
        assert not at.exception, (page, [e.value for e in at.exception])
        if page == "pages/runs.py":
            for run in (*damaged, odd):
                at.multiselect(key="runs_pick").set_value([run.name]).run()
                assert not at.exception, (run.name, [e.value for e in at.exception])
            assert any("metrics.json cannot be shown" in w.value for w in at.warning)
        if page == "pages/train.py":
            at.selectbox(key="train_init_from").set_value(str(odd)).run()
            assert not at.exception and any("config.yaml is not UTF-8" in e.value for e in at.error), at.error


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
_FIELDS = st.sampled_from([f for f in RunStatus.__dataclass_fields__] + ["state"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(_FIELDS, _JSON | st.sampled_from([s.value for s in RunState]), max_size=8) | _JSON)
def test_any_json_in_status_json_reads_as_a_typed_status(tmp_path: Path, data: object) -> None:
    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    (run / "config.yaml").write_text("model: tiny\n")
    RunFolder(run).status_file.write_text(json.dumps(data), encoding="utf-8")
    status = RunFolder(run).read_status()
    assert isinstance(status.state, RunState)
    if status.state is not RunState.UNKNOWN:  # what was accepted has its declared types
        assert status.pid is None or (isinstance(status.pid, int) and 0 < status.pid < 2**31)
        assert status.train_clock is None or isinstance(status.train_clock, tuple)
    info = manager.RunInfo(run, manager.derive_state(run), RunFolder(run).read_status())
    summarize(info)


# --- 8. claiming a named run folder is atomic ------------------------------------------------------------------


def test_a_pid_without_its_start_time_is_never_signalled(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """pid 1 always runs: a status.json that names it (without the start time every writer
    records) must not show a run as running, nor have Stop signal that process."""
    run = _run(default_runs_dir(), tmp_path, state="running")
    RunFolder(run).write_status(pid=1)
    assert manager.derive_state(run) is RunState.CRASHED
    code, _, err = _cli(capsys, "runs", "stop", run.name, "--grace", "0")
    _one_line_error(code, err)
    assert "is not running" in err


def test_two_claims_of_one_run_folder_at_once_give_it_to_one(tmp_path: Path) -> None:
    config = make_config(data=str(tmp_path), model="tiny")

    def claim(folder: Path, barrier: threading.Barrier, won: list[Path], lost: list[str]) -> None:
        barrier.wait()
        try:
            won.append(create_run(config, folder=folder))
        except RunError as exc:
            lost.append(str(exc))

    for attempt in range(40):
        folder, barrier, won, lost = tmp_path / f"claimed-{attempt}", threading.Barrier(2), [], []
        threads = [threading.Thread(target=claim, args=(folder, barrier, won, lost)) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(won) == 1 and len(lost) == 1, (attempt, won, lost)
        assert RunFolder(folder).read_status().state == "queued"


def test_of_two_claims_that_both_found_the_folder_empty_one_gets_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both pass the emptiness check before either writes: the exclusive create decides."""
    from autotag.store import run_folder as folder_module

    barrier, real = threading.Barrier(2), folder_module.save_config

    def save_after_both_looked(config: object, path: Path, exclusive: bool = False) -> None:
        barrier.wait()
        real(config, path, exclusive)

    monkeypatch.setattr(folder_module, "save_config", save_after_both_looked)
    config, folder, won, lost = make_config(data=str(tmp_path), model="tiny"), tmp_path / "claimed", [], []

    def claim() -> None:
        try:
            won.append(create_run(config, folder=folder))
        except RunError as exc:
            lost.append(str(exc))

    threads = [threading.Thread(target=claim) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and len(lost) == 1 and "was just taken by another run" in lost[0]
