"""A library's file: SQLite, CSV or JSON lines, a row per file, resumable, readable with pandas and sqlite3."""

from __future__ import annotations

import base64
import shutil
import sqlite3
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from autotag.errors import UsageError
from autotag.library.store import FAILED, TAGGED, Known, LibraryMeta, Row, check_out, library_format, open_library

META = LibraryMeta(
    run="/runs/demo",
    checkpoint="best.ckpt",
    checkpoint_sha256="ab" * 32,
    labels=["piano", "drums", "fast"],
    thresholds=[0.4, 0.5, 0.6],
    sample_rate=16000,
    chunk_samples=48000,
    embedding_width=4,
)
EMBEDDING = np.array([0.5, -1.25, 3.0, 65504.0], dtype=np.float16)


def _tagged(path: str, probabilities: list[float], size: int = 100, mtime_ns: int = 7) -> Row:
    tags = [t for t, p, h in zip(META.labels, probabilities, META.thresholds) if p >= h]
    return Row(
        path,
        size,
        mtime_ns,
        TAGGED,
        duration=30.0,
        silent=False,
        tags=tags,
        probabilities=probabilities,
        embedding=EMBEDDING,
    )


def _failed(path: str) -> Row:
    return Row(path, 10, 8, FAILED, error="not a readable audio file (Format not recognised.)")


def test_the_suffix_chooses_the_format_and_a_bad_out_is_refused(tmp_path: Path) -> None:
    assert [library_format(Path(f"lib{s}")) for s in ("", ".sqlite", ".DB", ".csv", ".jsonl")] == [
        "sqlite",
        "sqlite",
        "sqlite",
        "csv",
        "jsonl",
    ]
    with pytest.raises(UsageError, match=r"--out 'lib.json': the suffix chooses the format: \.sqlite, "):
        check_out(tmp_path / "lib.json", resume=False)
    with pytest.raises(UsageError, match="is a folder"):
        check_out(tmp_path, resume=False)
    with pytest.raises(UsageError, match="there is no folder"):
        check_out(tmp_path / "nowhere" / "lib.sqlite", resume=False)
    (tmp_path / "lib.csv").write_text("")
    with pytest.raises(UsageError, match="lib.csv exists: add --resume"):
        check_out(tmp_path / "lib.csv", resume=False)
    check_out(tmp_path / "lib.csv", resume=True)
    check_out(tmp_path / "new.csv", resume=True)  # nothing to resume: a new library


def test_sqlite_rows_replace_a_file_s_row_and_read_back_with_pandas_and_sqlite3(tmp_path: Path) -> None:
    out = tmp_path / "lib.sqlite"
    with open_library(out, META, resume=False) as lib:
        lib.write(_tagged("/music/a.wav", [0.9, 0.1, 0.7]))
        lib.write(_failed("/music/b.mp3"))
        lib.write(_tagged("/music/c.ogg", [0.2, 0.3, 0.1]))
        lib.write(_tagged("/music/c.ogg", [0.1, 0.8, 0.2], size=200))  # tagged again: replaced
        assert lib.known("/music/c.ogg") == Known(200, 7, TAGGED)
        assert lib.known("/music/b.mp3") == Known(10, 8, FAILED) and lib.known("/music/x.wav") is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lib.sqlite"]  # one file: no WAL left beside it

    db = sqlite3.connect(out)
    files = pd.read_sql_query("SELECT * FROM files ORDER BY path", db)
    assert files.path.tolist() == ["/music/a.wav", "/music/b.mp3", "/music/c.ogg"]
    assert files.status.tolist() == ["tagged", "failed", "tagged"] and files["size"].tolist() == [100, 10, 200]
    assert files.tags.fillna("-").tolist() == ["piano;fast", "-", "drums"] and files.error[1].startswith("not a")
    probs = pd.read_sql_query("SELECT path, tag, probability FROM probabilities JOIN files ON id = file_id", db)
    assert len(probs) == 6 and probs.query("path == '/music/c.ogg' and tag == 'drums'").probability.item() == 0.8
    decided = db.execute("SELECT path, tag FROM file_tags ORDER BY path, tag").fetchall()
    assert decided == [("/music/a.wav", "fast"), ("/music/a.wav", "piano"), ("/music/c.ogg", "drums")]
    labels = db.execute("SELECT tag, threshold FROM labels ORDER BY position").fetchall()
    assert labels == list(zip(META.labels, META.thresholds))
    meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
    assert meta["kind"] == "autotag library" and meta["run"] == "/runs/demo" and meta["embedding_width"] == "4"
    vectors = db.execute("SELECT vector FROM embeddings").fetchall()
    assert len(vectors) == 2  # the failed file has none
    for (blob,) in vectors:
        np.testing.assert_array_equal(np.frombuffer(blob, "<f2"), EMBEDDING)
    db.close()
    if shutil.which("sqlite3"):
        shell = subprocess.run(
            ["sqlite3", str(out), "SELECT count(*) FROM files WHERE status = 'tagged'"], capture_output=True, text=True
        )
        assert shell.stdout.strip() == "2", shell.stderr


def test_a_library_is_resumed_only_by_the_same_model_and_thresholds(tmp_path: Path) -> None:
    for name in ("lib.sqlite", "lib.csv", "lib.jsonl"):
        out = tmp_path / name
        with open_library(out, META, resume=False) as lib:
            lib.write(_tagged("/music/a.wav", [0.9, 0.1, 0.7]))
        with pytest.raises(UsageError, match=f"{name} exists: add --resume"):
            open_library(out, META, resume=False)
        with pytest.raises(UsageError, match=f"{name} was tagged by another model .run /runs/demo, best.ckpt."):
            open_library(out, replace(META, checkpoint_sha256="cd" * 32), resume=True)
        with pytest.raises(UsageError, match="at other thresholds; resume it with the same --threshold"):
            open_library(out, replace(META, thresholds=[0.5, 0.5, 0.5]), resume=True)
        with open_library(out, META, resume=True) as lib:
            assert lib.known("/music/a.wav") == Known(100, 7, TAGGED)


def test_a_file_that_is_no_library_is_refused_not_overwritten(tmp_path: Path) -> None:
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"SQLite format 3\0" + bytes(200))
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    csv_without_meta = tmp_path / "plain.csv"
    csv_without_meta.write_text("a,b\n1,2\n")
    for out in (junk, other, csv_without_meta):
        before = out.read_bytes()
        with pytest.raises(UsageError, match="is not a library autotag wrote"):
            open_library(out, META, resume=True)
        assert out.read_bytes() == before


def test_one_writer_at_a_time(tmp_path: Path) -> None:
    for name in ("lib.sqlite", "lib.jsonl"):
        with open_library(tmp_path / name, META, resume=False):
            with pytest.raises(UsageError, match="is being written by another `autotag tag`"):
                open_library(tmp_path / name, META, resume=True)
        open_library(tmp_path / name, META, resume=True).close()  # free again once closed


def test_csv_and_json_lines_hold_the_same_rows_read_with_pandas(tmp_path: Path) -> None:
    for name in ("lib.csv", "lib.jsonl"):
        with open_library(tmp_path / name, META, resume=False) as lib:
            lib.write(_tagged("/music/a, b.wav", [0.9, 0.1, 0.7]))
            lib.write(_failed("/music/b.mp3"))
    table = pd.read_csv(tmp_path / "lib.csv")
    assert table.columns.tolist() == [
        "path",
        "size",
        "mtime_ns",
        "status",
        "error",
        "duration",
        "silent",
        "tags",
        *META.labels,
    ]
    assert table.path.tolist() == ["/music/a, b.wav", "/music/b.mp3"] and table.tags[0] == "piano;fast"
    assert table.piano[0] == 0.9 and np.isnan(table.piano[1]) and table.status[1] == "failed"
    lines = pd.read_json(tmp_path / "lib.jsonl", lines=True)
    assert lines.tags[0] == ["piano", "fast"] and lines.probabilities[0] == pytest.approx(
        {"piano": 0.9, "drums": 0.1, "fast": 0.7}
    )
    np.testing.assert_array_equal(np.frombuffer(base64.b64decode(lines.embedding[0]), "<f2"), EMBEDDING)
    assert pd.isna(lines.embedding[1]) and lines.error[1].startswith("not a readable")
    assert (tmp_path / "lib.csv.meta.json").is_file() and (tmp_path / "lib.jsonl.meta.json").is_file()


def test_lines_keep_a_path_s_last_row_and_lose_a_row_a_crash_cut_short(tmp_path: Path) -> None:
    for name in ("lib.csv", "lib.jsonl"):
        out = tmp_path / name
        with open_library(out, META, resume=False) as lib:
            lib.write(_failed("/music/a.wav"))
            lib.write(_tagged("/music/b.wav", [0.1, 0.2, 0.3]))
        whole = out.read_bytes()
        out.write_bytes(whole + whole.splitlines(keepends=True)[-1][:15])  # killed while writing a row
        with open_library(out, META, resume=True) as lib:
            assert lib.known("/music/a.wav").status == FAILED
            lib.write(
                _tagged("/music/a.wav", [0.9, 0.9, 0.9])
            )  # tagged again: appended now, the old row dropped at close
            lib.write(_tagged("/music/c.wav", [0.5, 0.5, 0.5]))
        rows = pd.read_csv(out) if name.endswith(".csv") else pd.read_json(out, lines=True)
        assert rows.path.tolist() == ["/music/b.wav", "/music/a.wav", "/music/c.wav"]
        assert rows.status.tolist() == ["tagged"] * 3
