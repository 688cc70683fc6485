"""A library read back: facts, filters, sorts, pages, counts, the CSV, similarity, and the refusals."""

from __future__ import annotations

import csv
import io
import os
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from autotag.library import browse
from autotag.library.browse import LibraryFileError, Selection
from autotag.library.store import FAILED, TAGGED, LibraryMeta, Row, open_library

LABELS = ["piano", "drums", "guitar", "fast"]


def synthetic_library(
    out: Path,
    files: int,
    labels: list[str] = LABELS,
    width: int = 8,
    seed: int = 0,
    folder: str = "/music",
    failed_every: int = 20,
    silent_every: int = 50,
    index: str | None = None,
) -> tuple[LibraryMeta, np.ndarray, np.ndarray]:
    """A library of `files` rows in the documented schema, quickly (executemany).

    The schema and meta come from `store.open_library`, the rows from random numbers: row
    i is `{folder}/a{i % 10}/track{i:06d}.wav`, 30-330 s long; every `failed_every`-th failed
    (no probabilities, no embedding), every `silent_every`-th of the rest silent (0s, no
    embedding); each tag's threshold is 0.3, 0.4, ... 0.7, 0.3, ... by its position. `index`: a CREATE INDEX
    statement to add. Returns the meta, the probabilities (files x tags; NaN for failed)
    and the embeddings as stored (float16; NaN rows for none).
    """
    rng = np.random.default_rng(seed)
    thresholds = [round(0.3 + 0.1 * (i % 5), 2) for i in range(len(labels))]
    meta = LibraryMeta("/runs/synthetic", "best.ckpt", "ab" * 32, labels, thresholds, 16000, 48000, width)
    open_library(out, meta, resume=False).close()
    probabilities = rng.random((files, len(labels)))
    vectors = rng.standard_normal((files, width)).astype(np.float16)
    durations = 30 + 300 * rng.random(files)
    rows, probs, embeds = [], [], []
    for i in range(files):
        failed = failed_every and i % failed_every == failed_every - 1
        silent = not failed and silent_every and i % silent_every == silent_every - 1
        path = f"{folder}/a{i % 10}/track{i:06d}.wav"
        if failed:
            rows.append((i + 1, path, 1000 + i, i, FAILED, "not a readable audio file (x)", None, None, None))
            probabilities[i], vectors[i] = np.nan, np.nan
            continue
        if silent:
            probabilities[i], vectors[i] = 0.0, np.nan
        tags = (
            []
            if silent
            else [t for t, p, h in sorted(zip(labels, probabilities[i], thresholds), key=lambda x: -x[1]) if p >= h]
        )
        rows.append((i + 1, path, 1000 + i, i, TAGGED, None, float(durations[i]), int(bool(silent)), ";".join(tags)))
        probs += [(i + 1, t, float(p)) for t, p in zip(labels, probabilities[i])]
        if not silent:
            embeds.append((i + 1, vectors[i].astype("<f2").tobytes()))
    with sqlite3.connect(out) as db:
        db.executemany("INSERT INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        db.executemany("INSERT INTO probabilities VALUES (?, ?, ?)", probs)
        db.executemany("INSERT INTO embeddings VALUES (?, ?)", embeds)
        if index:
            db.execute(index)
    db.close()
    return meta, probabilities, vectors


@pytest.fixture
def library(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    out = tmp_path / "lib.sqlite"
    _, probabilities, vectors = synthetic_library(out, 200)
    return out, probabilities, vectors


def _ids(page: browse.Page) -> list[int]:
    return [row["id"] - 1 for row in page.rows]  # row index i has id i + 1


def test_facts_say_what_tagged_the_library_and_how_files_came_out(library: tuple) -> None:
    out, _, _ = library
    facts = browse.read_facts(out)
    assert (facts.run, facts.checkpoint, facts.labels) == ("/runs/synthetic", "best.ckpt", LABELS)
    assert facts.thresholds == {"piano": 0.3, "drums": 0.4, "guitar": 0.5, "fast": 0.6}
    # 200 rows: 10 failed (every 20th: 19, 39, ...), 2 silent (every 50th of the rest: 49, 149)
    assert (facts.tagged, facts.silent, facts.failed, facts.files) == (188, 2, 10, 200)
    assert facts.embedding_width == 8 and not facts.writing


def test_tags_filter_at_their_thresholds_or_at_chosen_minimums(library: tuple) -> None:
    out, probabilities, _ = library
    heard = np.array([not np.isnan(p[0]) and p.any() for p in probabilities])  # tagged, not silent
    at_thresholds = heard & (probabilities[:, 0] >= 0.3) & (probabilities[:, 3] >= 0.6)
    selection = Selection(tags=(("piano", None), ("fast", None)))
    assert browse.count(out, selection) == at_thresholds.sum()
    shown = browse.page(out, selection, size=500)
    assert sorted(_ids(shown)) == list(np.flatnonzero(at_thresholds))
    assert all({"piano", "fast"} <= set(row["tags"]) for row in shown.rows)
    assert shown.columns == ["piano", "fast"] and shown.rows[0]["probabilities"]["piano"] >= 0.3
    minimums = heard & (probabilities[:, 1] >= 0.9)
    assert browse.count(out, Selection(tags=(("drums", 0.9),))) == minimums.sum()
    # a minimum of 0 still leaves out the silent clips (their 0s are no tags) and the failed ones
    assert browse.count(out, Selection(tags=(("drums", 0.0),))) == 188


def test_text_and_outcomes_filter_and_combine(library: tuple) -> None:
    out, _, _ = library
    assert browse.count(out, Selection(text="/A3/")) == 20  # case-insensitive, anywhere in the path
    assert browse.count(out, Selection(text="track00001")) == 10  # track000010 .. 000019
    assert browse.count(out, Selection(text="100%_")) == 0  # % and _ are plain characters
    assert browse.count(out, Selection(outcomes=("failed",))) == 10
    assert browse.count(out, Selection(outcomes=("silent",))) == 2
    assert browse.count(out, Selection(outcomes=("tagged", "silent"))) == 190
    assert browse.count(out, Selection(outcomes=browse.OUTCOMES)) == 200
    failed_in_a9 = browse.page(out, Selection(text="/a9/", outcomes=("failed",)))
    assert [row["path"] for row in failed_in_a9.rows] == [f"/music/a9/track{i:06d}.wav" for i in range(19, 200, 20)]
    assert all(row["outcome"] == "failed" and row["error"] for row in failed_in_a9.rows)


def test_sorts_by_path_duration_and_a_tags_probability_with_missing_values_last(library: tuple) -> None:
    out, probabilities, _ = library
    by_path = browse.page(out, Selection(sort="path", descending=True), size=3)
    assert [row["path"] for row in by_path.rows] == [f"/music/a9/track{i:06d}.wav" for i in (199, 189, 179)]
    longest = browse.page(out, Selection(sort="duration", descending=True), size=200)
    durations = [row["duration"] for row in longest.rows]
    assert durations[:190] == sorted(durations[:190], reverse=True) and durations[190:] == [None] * 10
    shortest = browse.page(out, Selection(sort="duration"), size=200)
    assert [row["duration"] for row in shortest.rows][190:] == [None] * 10
    guitar = browse.page(out, Selection(sort="probability", sort_tag="guitar", descending=True), size=200)
    # the highest first, ties (the silent clips' 0s) by row id the same way, then the failed by path
    expected = np.lexsort((-np.arange(200), -np.nan_to_num(probabilities[:, 2], nan=-1)))
    assert _ids(guitar)[:190] == list(expected[:190])
    assert _ids(guitar)[188:190] == [149, 49] and _ids(guitar)[190:] == sorted(
        range(19, 200, 20), key=lambda i: f"a{i % 10}/{i:06d}"
    )
    rising = browse.page(out, Selection(sort="probability", sort_tag="guitar"), size=200)
    assert _ids(rising)[:2] == [49, 149] and _ids(rising)[190:] == _ids(guitar)[190:]
    assert [row["probabilities"]["guitar"] for row in guitar.rows][190:] == [None] * 10
    assert guitar.columns == ["guitar"]


def test_pages_cover_the_selection_once_and_a_page_past_the_end_is_the_last(library: tuple) -> None:
    out, _, _ = library
    selection = Selection(sort="probability", sort_tag="drums")
    pages = [browse.page(out, selection, number, size=50) for number in (1, 2, 3, 4)]
    assert [p.caption() for p in pages] == [
        "rows 1-50 of 200",
        "rows 51-100 of 200",
        "rows 101-150 of 200",
        "rows 151-200 of 200",
    ]
    assert sorted(i for p in pages for i in _ids(p)) == list(range(200))
    assert browse.page(out, selection, 99, size=50).caption() == "rows 151-200 of 200"
    assert browse.page(out, selection, 0, size=50).number == 1
    none = browse.page(out, Selection(text="nowhere"))
    assert (none.rows, none.total, none.pages, none.caption()) == ([], 0, 1, "no rows")


def test_the_csv_is_the_selection_in_order_with_every_tags_probability(library: tuple) -> None:
    out, probabilities, _ = library
    selection = Selection(tags=(("guitar", 0.8),), sort="probability", sort_tag="guitar", descending=True)
    rows = list(csv.reader(io.StringIO(browse.selection_csv(out, selection).decode("utf-8"))))
    assert rows[0] == ["path", "size", "mtime_ns", "status", "error", "duration", "silent", "tags", *LABELS]
    shown = browse.page(out, selection, size=500)
    assert [r[0] for r in rows[1:]] == [row["path"] for row in shown.rows] and len(rows) - 1 == shown.total
    first = int(rows[1][0][-10:-4])
    assert rows[1][8:] == [f"{p:.6f}" for p in probabilities[first]]
    failed = list(csv.reader(io.StringIO(browse.selection_csv(out, Selection(outcomes=("failed",))).decode())))
    assert failed[1][3:8] == ["failed", "not a readable audio file (x)", "", "", ""] and failed[1][8:] == [""] * 4


def test_more_like_this_is_the_nearest_by_cosine_similarity(library: tuple) -> None:
    out, _, vectors = library
    stored = vectors.astype(np.float32)
    have = ~np.isnan(stored[:, 0])
    unit = np.where(have[:, None], stored / np.linalg.norm(np.nan_to_num(stored), axis=1, keepdims=True), 0)
    scores = np.nan_to_num(unit) @ unit[5]
    scores[5], scores[~have] = -np.inf, -np.inf
    expected = list(np.argsort(-scores, kind="stable")[:7])
    near = browse.similar(out, 6, k=7)  # row 5 has id 6
    assert [n.id - 1 for n in near] == expected
    assert [n.similarity for n in near] == sorted((n.similarity for n in near), reverse=True)
    assert near[0].similarity == pytest.approx(scores[expected[0]], abs=1e-5) and near[0].path.endswith(".wav")
    assert browse.similar(out, 20, k=5) == []  # row 19 failed: no embedding, no neighbours
    assert len(browse.similar(out, 6, k=1000)) == have.sum() - 1  # all the others, never itself


def test_more_like_this_reads_the_embeddings_a_block_at_a_time(library: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    out, _, _ = library
    whole = browse.similar(out, 1, k=12)
    monkeypatch.setattr(browse, "BLOCK", 16)
    assert browse.similar(out, 1, k=12) == whole


def test_a_library_being_written_in_wal_mode_is_read_with_its_committed_rows(tmp_path: Path) -> None:
    out = tmp_path / "lib.sqlite"
    meta, _, _ = synthetic_library(out, 20)
    writer = open_library(out, meta, resume=True)  # WAL mode, locked, open: `tag --resume` running
    try:
        writer.write(Row("/music/new.wav", 1, 2, FAILED, error="not audio"))
        facts = browse.read_facts(out)
        assert facts.writing and facts.failed == 2 and facts.files == 21
        assert browse.count(out, Selection(text="new.wav")) == 1
    finally:
        writer.close()
    assert not browse.read_facts(out).writing


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: None, r"lib\.sqlite'?: no such file"),
        (lambda p: p.mkdir(), r"is a folder: give a library file"),
        (
            lambda p: p.write_text("path,tags\n" * 100),
            r"lib\.sqlite is not a library autotag wrote \(not an SQLite file\)",
        ),
        (lambda p: p.write_bytes(b""), r"lib\.sqlite is not a library autotag wrote \(no such table: meta\)"),
        (
            lambda p: sqlite3.connect(p).execute("CREATE TABLE meta (key, value)").connection.commit(),
            r"its meta table has no kind 'autotag library'",
        ),
    ],
)
def test_what_is_no_library_is_refused_in_one_line(tmp_path: Path, make, message: str) -> None:  # noqa: ANN001
    out = tmp_path / "lib.sqlite"
    make(out)
    for call in (browse.read_facts, browse.count, browse.page, browse.selection_csv):
        with pytest.raises(LibraryFileError, match=message) as caught:
            call(out)
        assert "\n" not in str(caught.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == (["lib.sqlite"] if out.exists() else [])  # nothing written


def test_another_version_an_unknown_tag_and_a_damaged_embedding_are_refused(tmp_path: Path) -> None:
    out = tmp_path / "lib.sqlite"
    synthetic_library(out, 30)
    with pytest.raises(LibraryFileError, match="lib.sqlite has no tag 'bass'"):
        browse.count(out, Selection(tags=(("bass", None),)))
    with pytest.raises(LibraryFileError, match="lib.sqlite has no tag 'bass'"):
        browse.page(out, Selection(sort="probability", sort_tag="bass"))
    with pytest.raises(LibraryFileError, match="sort by 'size': choose from path, duration, probability"):
        browse.page(out, Selection(sort="size"))
    with pytest.raises(LibraryFileError, match="no outcome 'lost'"):
        browse.count(out, Selection(outcomes=("lost",)))
    with sqlite3.connect(out) as db:
        db.execute("UPDATE embeddings SET vector = x'0102' WHERE file_id = 3")
    db.close()
    with pytest.raises(LibraryFileError, match="an embedding is not 8 float16 values; the library is damaged"):
        browse.similar(out, 1)
    with sqlite3.connect(out) as db:
        db.execute("UPDATE meta SET value = '2' WHERE key = 'version'")
    db.close()
    with pytest.raises(LibraryFileError, match="a library of format version '2'; this autotag reads version 1"):
        browse.read_facts(out)


def test_reading_never_writes_to_the_library(tmp_path: Path) -> None:
    out = tmp_path / "lib.sqlite"
    synthetic_library(out, 30)
    before = out.read_bytes()
    out.chmod(0o444)
    browse.page(out, Selection(tags=(("piano", None),), sort="duration"))
    browse.similar(out, 1)
    assert out.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["lib.sqlite"]


def test_libraries_are_found_in_folders_newest_first(tmp_path: Path) -> None:
    synthetic_library(tmp_path / "old.sqlite", 3)
    synthetic_library(tmp_path / "new.db", 3)
    (tmp_path / "notes.sqlite").write_text("not one")
    (tmp_path / "lib.csv").write_text("path\n")
    os.utime(tmp_path / "old.sqlite", (1e9, 1e9))
    assert browse.find_libraries(tmp_path, tmp_path, tmp_path / "nowhere") == [
        tmp_path / "new.db",
        tmp_path / "old.sqlite",
    ]


def test_a_rows_clip_is_read_for_its_player_and_a_missing_one_says_so(tmp_path: Path) -> None:
    clip = tmp_path / "clip.wav"
    clip.write_bytes(b"RIFF....")
    info = clip.stat()
    row = {"path": str(clip), "size": info.st_size, "mtime_ns": info.st_mtime_ns}
    assert browse.read_clip(row) == b"RIFF...." and not browse.changed_since_tagged(row)
    clip.write_bytes(b"RIFF.....")
    assert browse.changed_since_tagged(row)
    clip.unlink()
    with pytest.raises(LibraryFileError, match=r"clip\.wav' is gone: it was moved or deleted since it was tagged"):
        browse.read_clip(row)
    os.mkfifo(clip)  # a named pipe in its place: refused at once, never waited on
    with pytest.raises(LibraryFileError, match="'clip.wav' is no longer a regular file"):
        browse.read_clip(row)


def test_a_row_by_its_id_has_every_tags_probability(library: tuple) -> None:
    out, probabilities, _ = library
    row = browse.file_row(out, 1)
    assert row["probabilities"] == dict(zip(LABELS, probabilities[0])) and row["embedded"]
    failed = browse.file_row(out, 20)
    assert failed["outcome"] == "failed" and failed["probabilities"] == dict.fromkeys(LABELS) and not failed["embedded"]
    assert browse.file_row(out, 10_000) is None


def test_a_copy_of_a_library_left_in_wal_mode_is_read(tmp_path: Path) -> None:
    """`tag` ended while a reader held the file: its -wal and -shm stay beside it, read with it."""
    out = tmp_path / "lib.sqlite"
    meta, _, _ = synthetic_library(out, 10)
    writer = open_library(out, meta, resume=True)
    writer.write(Row("/music/late.wav", 1, 2, FAILED, error="not audio"))
    copy = tmp_path / "copy"
    copy.mkdir()
    for suffix in ("", "-wal", "-shm"):
        shutil.copy(f"{out}{suffix}", copy / f"lib.sqlite{suffix}")
    writer.close()
    assert browse.count(copy / "lib.sqlite", Selection(text="late.wav")) == 1


def test_a_row_without_a_tags_probability_is_listed_last_when_sorted_by_it(tmp_path: Path) -> None:
    """A library edited by hand (a tagged row's probability deleted) still lists every row once."""
    out = tmp_path / "lib.sqlite"
    synthetic_library(out, 40)
    with sqlite3.connect(out) as db:
        db.execute("DELETE FROM probabilities WHERE file_id = 1 AND tag = 'drums'")
    db.close()
    for descending in (False, True):
        shown = _ids(browse.page(out, Selection(sort="probability", sort_tag="drums", descending=descending), size=40))
        assert sorted(shown) == list(range(40))
        assert shown[-3:] == [0, 19, 39]  # no drums probability: by path (a0/..., a9/...)


def test_data_roots_bound_the_libraries_and_clips_read_and_only_audio_is_played(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inside, outside = tmp_path / "music", tmp_path / "elsewhere"
    inside.mkdir(), outside.mkdir()
    synthetic_library(inside / "lib.sqlite", 5)
    shutil.copy(inside / "lib.sqlite", outside / "lib.sqlite")
    (outside / "clip.wav").write_bytes(b"RIFF")
    (inside / "clip.wav").write_bytes(b"RIFF")
    (inside / "notes.txt").write_text("secret")
    monkeypatch.setenv("AUTOTAG_DATA_ROOTS", str(inside))
    assert browse.count(inside / "lib.sqlite") == 5
    with pytest.raises(LibraryFileError, match="a library must lie in AUTOTAG_DATA_ROOTS"):
        browse.count(outside / "lib.sqlite")
    assert browse.read_clip({"path": str(inside / "clip.wav")}) == b"RIFF"
    with pytest.raises(LibraryFileError, match="a clip must lie in AUTOTAG_DATA_ROOTS"):
        browse.read_clip({"path": str(outside / "clip.wav")})
    with pytest.raises(LibraryFileError, match="'notes.txt': only wav, flac, ogg, mp3 files are played here"):
        browse.read_clip({"path": str(inside / "notes.txt")})
    with pytest.raises(LibraryFileError, match="not a path"):
        browse.read_facts("lib\0.sqlite")
