import csv
import hashlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from autotag.data.demo import TAGS, make_demo_dataset, synthesize_clip


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            h.update(path.relative_to(folder).as_posix().encode() + path.read_bytes())
    return h.hexdigest()


def test_same_seed_same_bytes_regardless_of_workers(tmp_path: Path) -> None:
    a = make_demo_dataset(tmp_path / "a", clips=12, seed=3, workers=1)
    b = make_demo_dataset(tmp_path / "b", clips=12, seed=3, workers=2)
    c = make_demo_dataset(tmp_path / "c", clips=12, seed=4, workers=2)
    assert _digest(a) == _digest(b) != _digest(c)


def test_written_in_the_plain_folder_format(tmp_path: Path) -> None:
    out = make_demo_dataset(tmp_path / "demo", clips=20, seed=0)
    rows = list(csv.DictReader((out / "tags.csv").open()))
    assert len(rows) == 20 and set(rows[0]) == {"path", "tags"}
    for row in rows:
        tags = row["tags"].split(";")
        assert set(tags) <= set(TAGS) and ("fast" in tags) != ("slow" in tags)
        audio, sr = sf.read(out / row["path"])
        assert sr == 16000 and len(audio) == 160000 and np.abs(audio).max() <= 1.0
    assert not list(tmp_path.glob(".demo.tmp*"))


def test_tags_are_audible() -> None:
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
