"""Which files a library holds: folders walked in name order, formats, hidden names, bad inputs refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from autotag.errors import UsageError
from autotag.library.scan import FORMATS, audio_files, check_inputs, parse_formats


def _touch(root: Path, *names: str) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")


def test_formats_are_a_comma_separated_choice() -> None:
    assert FORMATS == ("wav", "flac", "ogg", "mp3")
    assert parse_formats("mp3, FLAC,.wav,mp3") == ("mp3", "flac", "wav")
    for bad in ("aac", "wav,m4a", "", ","):
        with pytest.raises(UsageError, match="--formats .* choose from wav,flac,ogg,mp3"):
            parse_formats(bad)


def test_folders_are_walked_in_name_order_by_suffix_without_hidden_names(tmp_path: Path) -> None:
    _touch(tmp_path, "b/2.MP3", "b/1.flac", "a.wav", "notes.txt", "c/d/e.ogg", ".hidden/x.wav", "b/._1.flac")
    os.symlink(tmp_path / "b", tmp_path / "z-link")  # a symlinked folder: not followed
    found = [Path(p).relative_to(tmp_path).as_posix() for p in audio_files([tmp_path])]
    assert found == ["a.wav", "b/1.flac", "b/2.MP3", "c/d/e.ogg"]
    assert [Path(p).name for p in audio_files([tmp_path], ("ogg", "mp3"))] == ["2.MP3", "e.ogg"]


def test_a_file_given_is_taken_whatever_its_name_and_each_path_once(tmp_path: Path, monkeypatch) -> None:
    _touch(tmp_path, "music/a.wav", "music/sub/b.wav", "voice.m4a")
    monkeypatch.chdir(tmp_path)
    inputs = check_inputs(["music", "voice.m4a", "music/sub", "./music", "music/a.wav"], recursive=True)
    assert inputs == [tmp_path / "music", tmp_path / "voice.m4a"]  # absolute; inside a folder given: once
    assert [Path(p).name for p in audio_files(inputs)] == ["a.wav", "b.wav", "voice.m4a"]


def test_bad_inputs_are_refused_in_one_line(tmp_path: Path) -> None:
    _touch(tmp_path, "music/a.wav")
    os.mkfifo(tmp_path / "pipe.wav")
    with pytest.raises(UsageError, match="music is a folder: add --recursive"):
        check_inputs([str(tmp_path / "music")], recursive=False)
    with pytest.raises(UsageError, match="gone: no such file or folder"):
        check_inputs([str(tmp_path / "music"), str(tmp_path / "gone")], recursive=True)
    with pytest.raises(UsageError, match="pipe.wav is neither a file nor a folder"):
        check_inputs([str(tmp_path / "pipe.wav")], recursive=True)


def test_a_folder_that_cannot_be_listed_is_reported_and_the_rest_walked(tmp_path: Path, monkeypatch) -> None:
    _touch(tmp_path, "open/a.wav", "shut/b.wav")
    scandir = os.scandir

    def no_entry(path):  # noqa: ANN001, ANN202 - as a folder without read permission (tests run as root)
        if Path(path).name == "shut":
            raise PermissionError(13, "Permission denied", str(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", no_entry)
    problems: list[str] = []
    assert [Path(p).name for p in audio_files([tmp_path], unreadable=problems.append)] == ["a.wav"]
    assert problems == [f"{tmp_path / 'shut'}: Permission denied"]
