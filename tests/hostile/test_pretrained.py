"""`pretrained get` with what a careless user or a hostile mirror gives it: exit 2, one line,
no run folder, nothing in the download cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from autotag.cli.main import main
from autotag.pretrained import fetch
from autotag.store.run_folder import default_runs_dir


def _refused(capsys: pytest.CaptureFixture, *argv: str) -> str:
    code = main(["pretrained", "get", *argv])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("autotag: error: ") and err.count("\n") == 1, err
    assert not default_runs_dir().exists() or not any(default_runs_dir().iterdir())
    assert not fetch.cache_dir().exists() or not any(fetch.cache_dir().iterdir())
    return err


def test_bad_files_and_names_are_refused_before_anything_is_written(
    published_weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty, text = tmp_path / "empty.pth", tmp_path / "notes.pth"
    empty.write_bytes(b"")
    text.write_text("not weights")
    assert "is not the published mtat-fcn" in _refused(
        capsys, "mtat-fcn", "--from", str(published_weights / "msd_fcn.pth")
    )
    for given in (empty, text):
        assert "is not the published mtat-fcn" in _refused(capsys, "mtat-fcn", "--from", str(given))
    assert "cannot read" in _refused(capsys, "mtat-fcn", "--from", str(tmp_path / "missing.pth"))
    assert "cannot read" in _refused(capsys, "mtat-fcn", "--from", str(tmp_path))
    assert "no published model 'mtat-vgg'; the catalogue has mtat-fcn" in _refused(capsys, "mtat-vgg")
    monkeypatch.setenv(fetch.MIRROR_ENV, str(tmp_path / "no-mirror"))
    assert "is not in AUTOTAG_PRETRAINED_DIR" in _refused(capsys, "mtat-fcn")


def test_offline_with_no_mirror_get_says_where_from_within_seconds(
    capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """This machine reaches no repository of weights: the download fails fast and names the way out."""
    from autotag.pretrained.catalogue import published

    monkeypatch.setattr(fetch, "TIMEOUT_S", 3.0)
    monkeypatch.setattr(type(published("mtat-fcn")), "url", property(lambda self: "http://127.0.0.1:9/x.pth"))
    err = _refused(capsys, "mtat-fcn")
    assert "cannot download http://127.0.0.1:9/x.pth" in err and "--from FILE" in err


def test_a_disk_that_fails_mid_import_leaves_no_half_made_run(
    published_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A queued run without a checkpoint would be started by the scheduler and fail: none is left."""
    from autotag.pretrained.importer import get
    from autotag.store import checkpoints

    def full_disk(checkpoint: object, path: Path) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoints, "save_atomic", full_disk)
    with pytest.raises(OSError, match="No space left"):
        get("mtat-fcn", published_weights / "mtat_fcn.pth")
    assert not any(p.is_dir() for p in default_runs_dir().iterdir())
