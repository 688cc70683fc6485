"""`python -m autotag similar`: lines or JSON, nearest first; bad input exits 2 in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autotag.cli.main import main
from tests.library.test_browse import synthetic_library


@pytest.fixture
def library(tmp_path: Path) -> Path:
    out = tmp_path / "lib.sqlite"
    synthetic_library(out, 40)  # rows /music/a{i % 10}/track{i:06d}.wav, every 20th failed
    return out


def test_lines_and_json_nearest_first(library: Path, capsys: pytest.CaptureFixture) -> None:
    track = "/music/a3/track000003.wav"
    assert main(["similar", "--library", str(library), track, "--k", "4"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4
    rows = [line.split("\t") for line in lines]
    assert all(len(r) == 3 and r[1].startswith("/music/") and r[1] != track for r in rows)
    similarities = [float(r[0]) for r in rows]
    assert similarities == sorted(similarities, reverse=True)

    assert main(["similar", "--library", str(library), track, "--k", "4", "--format", "json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert [f["path"] for f in found] == [r[1] for r in rows]
    assert [f["similarity"] for f in found] == pytest.approx(similarities, abs=1e-4)


def test_bad_input_exits_2_in_one_line(library: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    for args, message in (
        ([str(tmp_path / "none.sqlite"), "/music/a3/track000003.wav"], "no such file"),
        ([str(library), "/music/a9/track000019.wav"], "has no embedding in lib.sqlite: it failed"),
        ([str(library), "/music/elsewhere.wav"], "is neither a file in lib.sqlite nor an audio file"),
    ):
        assert main(["similar", "--library", *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith("autotag: error: ") and message in err and err.count("\n") == 1, err
    with pytest.raises(SystemExit) as exit_:
        main(["similar", "--library", str(library), "/music/a3/track000003.wav", "--k", "0"])
    assert exit_.value.code == 2
