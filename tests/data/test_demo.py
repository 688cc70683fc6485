import csv
import hashlib
import logging
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from autotag.data import instruments
from autotag.data.demo import NOTES_FILE, TAGS, artist_splits, make_demo_dataset, synthesize_clip
from autotag.data.formats import read_csv_folder

needs_fluidsynth = pytest.mark.skipif(
    instruments.unavailable(instruments.DEFAULT_SOUNDFONT) is not None, reason="FluidSynth or FluidR3_GM is missing"
)


@pytest.fixture
def no_soundfont(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default soundfont is not installed: the demo set falls back to synthetic tones."""
    monkeypatch.setattr(instruments, "DEFAULT_SOUNDFONT", tmp_path / "missing" / "FluidR3_GM.sf2")


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            h.update(path.relative_to(folder).as_posix().encode() + path.read_bytes())
    return h.hexdigest()


@pytest.mark.parametrize("source", [pytest.param("fluidsynth", marks=needs_fluidsynth), "synthetic"])
def test_same_seed_same_bytes_regardless_of_workers(
    source: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    tones = source == "synthetic"
    a = make_demo_dataset(tmp_path / "a", clips=12, seed=3, workers=1, synthetic=tones)
    b = make_demo_dataset(tmp_path / "b", clips=12, seed=3, workers=2, synthetic=tones)
    c = make_demo_dataset(tmp_path / "c", clips=12, seed=4, workers=2, synthetic=tones)
    assert _digest(a) == _digest(b) != _digest(c)
    assert ("Synthetic" in (a / NOTES_FILE).read_text()) == (source == "synthetic")


@needs_fluidsynth
def test_instruments_by_default_in_the_plain_folder_format_split_by_artist(tmp_path: Path) -> None:
    out = make_demo_dataset(tmp_path / "demo", clips=20, seed=0)
    rows = list(csv.DictReader((out / "tags.csv").open()))
    assert len(rows) == 20 and set(rows[0]) == {"path", "tags", "split", "artist"}
    split_of_artist: dict[str, set[str]] = {}
    for row in rows:
        tags = row["tags"].split(";")
        assert set(tags) <= set(instruments.TAGS) and not {"fast", "slow"} <= set(tags)
        split_of_artist.setdefault(row["artist"], set()).add(row["split"])
        audio, sr = sf.read(out / row["path"])
        assert sr == 16000 and len(audio) == 160000 and 0.05 < np.abs(audio).max() < 1.0
    assert all(len(splits) == 1 for splits in split_of_artist.values())
    data = read_csv_folder(out)
    assert {c.split for c in data.clips} == {"train", "valid", "test"} and not data.dropped
    assert "FluidR3_GM" in (out / NOTES_FILE).read_text()
    assert not list(tmp_path.glob(".demo.tmp*"))


def test_artist_splits_keep_every_tag_in_valid_and_test() -> None:
    rare = [[("a",), ("b",)]] + [[("b",)] * 3] * 8 + [[("a", "b"), ("a",)]]
    splits = artist_splits(rare, seed=0)
    assert splits.count("valid") == splits.count("test") == 1
    assert {splits[0], splits[-1]} == {"valid", "test"}  # the only artists with "a"
    assert splits == artist_splits(rare, seed=0)


def test_falls_back_to_synthetic_tones_and_says_why(
    no_soundfont: None, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="autotag.data.demo"):
        out = make_demo_dataset(tmp_path / "demo", clips=10, seed=0)
    assert "soundfont" in caplog.text and "bash scripts/setup.sh" in caplog.text
    rows = list(csv.DictReader((out / "tags.csv").open()))
    assert len(rows) == 10 and set(rows[0]) == {"path", "tags"}
    for row in rows:
        tags = row["tags"].split(";")
        assert set(tags) <= set(TAGS) and ("fast" in tags) != ("slow" in tags)
    assert "Synthetic" in (out / NOTES_FILE).read_text()


def test_synthetic_tones_when_asked_warn_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="autotag.data.demo"):
        out = make_demo_dataset(tmp_path / "demo", clips=10, seed=0, synthetic=True)
    note = (out / NOTES_FILE).read_text()
    assert not caplog.records and "--synthetic" in note and "demo-data OUT" in note
    with pytest.raises(ValueError, match="one of --synthetic and --soundfont"):
        make_demo_dataset(tmp_path / "both", clips=10, synthetic=True, soundfont=instruments.OTHER_SOUNDFONT)


def test_falls_back_without_libfluidsynth(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "fluidsynth", None)  # `import fluidsynth` raises ImportError
    assert "FluidSynth is not usable" in (instruments.unavailable(instruments.DEFAULT_SOUNDFONT) or "")
    out = make_demo_dataset(tmp_path / "demo", clips=10, seed=0, workers=1)
    assert "Synthetic" in (out / NOTES_FILE).read_text()


def test_a_soundfont_asked_for_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="setup.sh"):
        make_demo_dataset(tmp_path / "demo", clips=10, soundfont=tmp_path / "none.sf2")
    assert not (tmp_path / "demo").exists()


def test_synthetic_tags_are_audible() -> None:
    """Drums add low-frequency kick energy; fast clips have more onsets than slow ones."""
    kicks, onsets = {True: [], False: []}, {"fast": [], "slow": []}
    for seq in np.random.SeedSequence(11).spawn(40):
        audio, tags = synthesize_clip(seq)
        spectrum = np.abs(np.fft.rfft(audio))
        low = spectrum[: int(len(spectrum) * 90 / 8000)].sum() / spectrum.sum()
        kicks["drums" in tags].append(low)
        frames = np.abs(audio[: len(audio) // 400 * 400]).reshape(-1, 400).mean(1)
        rises = np.sum(np.diff(frames) > 0.02)
        onsets["fast" if "fast" in tags else "slow"].append(rises)
    assert np.mean(kicks[True]) > np.mean(kicks[False])
    assert np.mean(onsets["fast"]) > np.mean(onsets["slow"])


def test_refuses_to_overwrite_and_tiny_counts(tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        make_demo_dataset(tmp_path / "full", clips=10)
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    with pytest.raises(ValueError, match="at least 10"):
        make_demo_dataset(tmp_path / "x", clips=3)
