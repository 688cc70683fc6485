"""Tracks like a file: one the library holds by its stored embedding, any other scored by the
library's own run first; refused when there is nothing to compare or another model's embedding."""

from __future__ import annotations

import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from autotag.errors import UsageError
from autotag.library import browse
from autotag.library.similar import find_similar, stored_paths
from autotag.library.store import open_library
from autotag.library.tag import library_meta, tag_library
from autotag.serving.tagger import Tagger

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def library(trained_run: Path, demo_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """12 demo clips, a silent one and a broken one, tagged into a library; (library, folder)."""
    folder = tmp_path_factory.mktemp("similar") / "music"
    folder.mkdir()
    for clip in sorted((demo_dataset / "audio").glob("*.wav"))[:12]:
        shutil.copy(clip, folder / clip.name)
    sf.write(folder / "silence.wav", np.zeros(16000 * 3, np.float32), 16000)
    (folder / "broken.wav").write_bytes(b"RIFF....WAVEjunk")
    tagger = Tagger.load(trained_run, device="cpu")
    thresholds = dict.fromkeys(tagger.labels, 0.5)
    out = folder.parent / "lib.sqlite"
    with open_library(out, library_meta(tagger, trained_run, thresholds), resume=False) as lib:
        tag_library(tagger, lib, [folder], thresholds, workers=1)
    return out, folder


def test_a_file_in_the_library_finds_the_others_nearest_first_never_itself(library: tuple[Path, Path]) -> None:
    out, folder = library
    clip = sorted(folder.glob("clip_*.wav"))[0]
    found = find_similar(out, str(clip), k=5)
    assert found.in_library and len(found.neighbours) == 5
    assert str(clip) not in [n.path for n in found.neighbours]
    similarities = [n.similarity for n in found.neighbours]
    assert similarities == sorted(similarities, reverse=True) and all(-1 <= s <= 1 for s in similarities)
    everyone = find_similar(out, str(clip), k=100).neighbours
    assert len(everyone) == 11  # the other clips; the silent and the broken file have no embedding
    assert everyone[:5] == found.neighbours

    # Brute force by hand over the stored float16 vectors: the same order.
    with closing(sqlite3.connect(out)) as db:
        rows = db.execute("SELECT path, vector FROM embeddings JOIN files ON id = file_id").fetchall()
    vectors = {p: np.frombuffer(v, "<f2").astype(np.float32) for p, v in rows}
    query = vectors.pop(str(clip))
    cosine = {p: float(v @ query / np.linalg.norm(v) / np.linalg.norm(query)) for p, v in vectors.items()}
    assert [n.path for n in everyone] == sorted(cosine, key=lambda p: -cosine[p])
    assert [n.similarity for n in everyone] == pytest.approx([cosine[n.path] for n in everyone], abs=1e-5)


def test_a_file_from_outside_is_scored_by_the_library_s_run(library: tuple[Path, Path], tmp_path: Path) -> None:
    out, folder = library
    clip = sorted(folder.glob("clip_*.wav"))[3]
    wave, rate = sf.read(clip)
    sf.write(tmp_path / "excerpt.flac", wave[: int(rate * 7.3)], rate)  # most of it, another format
    found = find_similar(out, str(tmp_path / "excerpt.flac"), k=3)
    assert not found.in_library and found.neighbours[0].path == str(clip)
    copy = tmp_path / clip.name
    shutil.copy(clip, copy)  # the same audio outside: its twin in the library, at similarity 1
    twin = find_similar(out, str(copy), k=1).neighbours[0]
    assert twin.path == str(clip) and twin.similarity == pytest.approx(1.0, abs=1e-3)


def test_nothing_to_compare_is_refused_in_one_line(library: tuple[Path, Path], tmp_path: Path) -> None:
    out, folder = library
    with pytest.raises(UsageError, match="broken.wav' has no embedding in lib.sqlite: it failed .not a readable"):
        find_similar(out, str(folder / "broken.wav"))
    with pytest.raises(UsageError, match="silence.wav' has no embedding in lib.sqlite: it is silent throughout"):
        find_similar(out, str(folder / "silence.wav"))
    with pytest.raises(UsageError, match="'gone.wav' is neither a file in lib.sqlite nor an audio file"):
        find_similar(out, "gone.wav")
    sf.write(tmp_path / "quiet.wav", np.zeros(16000, np.float32), 16000)
    with pytest.raises(UsageError, match="quiet.wav' is silent throughout"):
        find_similar(out, str(tmp_path / "quiet.wav"))
    with pytest.raises(browse.LibraryFileError, match="no such file"):
        find_similar(tmp_path / "nowhere.sqlite", str(folder / "silence.wav"))


def test_another_model_s_embeddings_are_not_compared(library: tuple[Path, Path], tmp_path: Path) -> None:
    out, folder = library
    other = tmp_path / "other.sqlite"
    shutil.copy(out, other)
    with closing(sqlite3.connect(other)) as db, db:
        db.execute("UPDATE meta SET value = ? WHERE key = 'checkpoint_sha256'", ("0" * 64,))
    outside = tmp_path / "outside.wav"
    shutil.copy(sorted(folder.glob("clip_*.wav"))[0], outside)
    with pytest.raises(UsageError, match="has changed since; using .*: another model's embeddings are not comparable"):
        find_similar(other, str(outside))
    assert find_similar(other, str(sorted(folder.glob("clip_*.wav"))[0]), k=1).in_library  # stored ones still are


def test_a_symlinked_file_is_found_by_the_name_the_library_holds(tmp_path: Path) -> None:
    (tmp_path / "real.wav").write_bytes(b"")
    (tmp_path / "link.wav").symlink_to(tmp_path / "real.wav")
    assert stored_paths(str(tmp_path / "link.wav")) == [str(tmp_path / "link.wav"), str(tmp_path / "real.wav")]
    assert stored_paths(str(tmp_path / "real.wav")) == [str(tmp_path / "real.wav")]
