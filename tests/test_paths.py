"""Paths from users and files: nothing escapes the runs folder or the data set folders."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import soundfile as sf

from autotag.config import make_config
from autotag.data.formats import DataFormatError, load_dataset
from autotag.runs import manager
from autotag.store.checkpoints import checkpoint_candidates
from autotag.store.run_folder import RunError, create_run, default_runs_dir, sanitize_name
from tests.conftest import tone, write_csv_dataset


def test_audio_paths_that_leave_the_data_set_are_refused(tmp_path: Path) -> None:
    outside = tmp_path / "secret.wav"
    sf.write(outside, tone(0.5), 16000)
    root = write_csv_dataset(tmp_path / "ds", [("a.wav", "x;y", "train"), ("b.wav", "y", "valid")])
    (root / "link.wav").symlink_to(outside)
    csv = root / "tags.csv"
    csv.write_text(csv.read_text() + f"../secret.wav,x,train\n{outside},x,train\nlink.wav,y,train\n")
    ds = load_dataset(root)
    assert [c.id for c in ds.clips] == ["a.wav", "b.wav"]
    assert len(ds.dropped) == 3 and all("leaves the data set folder" in d for d in ds.dropped)


def test_configured_data_roots_are_enforced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_csv_dataset(tmp_path / "allowed" / "ds", [("a.wav", "x;y", "train"), ("b.wav", "y", "valid")])
    other = write_csv_dataset(tmp_path / "other", [("a.wav", "x;y", "train"), ("b.wav", "y", "valid")])
    monkeypatch.setenv("AUTOTAG_DATA_ROOTS", str(tmp_path / "allowed"))
    assert len(load_dataset(root).clips) == 2
    with pytest.raises(DataFormatError, match="outside the allowed data folders"):
        load_dataset(other)
    with pytest.raises(DataFormatError, match="outside the allowed data folders"):
        load_dataset(tmp_path / "allowed" / ".." / "other")


def test_run_names_stay_in_the_runs_folder_and_paths_are_taken_as_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = create_run(make_config(data=str(tmp_path), model="tiny"))
    assert manager.resolve_run(run.name) == run.resolve()
    assert manager.resolve_run(run) == run.resolve()
    elsewhere = create_run(make_config(data=str(tmp_path), model="tiny"), tmp_path / "elsewhere")
    # A path is the user's explicit choice: absolute, or relative to the current folder.
    assert manager.resolve_run(str(elsewhere)) == elsewhere
    monkeypatch.chdir(tmp_path)
    assert manager.resolve_run(f"elsewhere/{elsewhere.name}") == elsewhere
    assert manager.resolve_run(elsewhere.name, runs_dir="elsewhere") == elsewhere
    # A name never leaves the runs folder; a path must be a run folder.
    for ref in (f"../elsewhere/{elsewhere.name}", "/etc", "..", ".", "", elsewhere.name):
        with pytest.raises(RunError):
            manager.resolve_run(ref)
    (default_runs_dir() / "sneaky").symlink_to(elsewhere)
    with pytest.raises(RunError, match="no run 'sneaky'"):
        manager.resolve_run("sneaky")
    with pytest.raises(RunError, match="symbolic link"):  # a path is not followed through a link either
        manager.resolve_run(default_runs_dir() / "sneaky")


def test_run_names_become_one_safe_path_component() -> None:
    assert sanitize_name("../../etc/passwd") == "etc-passwd"
    assert sanitize_name("/abs") == "abs"
    assert sanitize_name("...") == "run"
    assert sanitize_name("my run: lr=1e-3") == "my-run-lr-1e-3"
    assert len(sanitize_name("x" * 500)) == 40


def test_checkpoints_are_loaded_only_from_the_run_itself(tmp_path: Path) -> None:
    run = create_run(make_config(data=str(tmp_path), model="tiny"))
    (run / "checkpoints").mkdir()
    foreign = tmp_path / "foreign.ckpt"
    foreign.write_bytes(b"not ours")
    os.symlink(foreign, run / "checkpoints" / "last.ckpt")
    with pytest.raises(RunError, match="no checkpoint yet"):
        checkpoint_candidates(run)
    (run / "checkpoints" / "last.ckpt").unlink()
    shutil.copy(foreign, run / "checkpoints" / "last.ckpt")
    assert checkpoint_candidates(run) == [run / "checkpoints" / "last.ckpt"]
