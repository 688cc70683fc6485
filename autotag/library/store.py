"""A library's rows on disk, one per file, written as each file is done: SQLite, CSV or JSON lines.

The suffix of the file chooses (`FORMATS`; a name without one is SQLite). Every row says
which file (its absolute path, size and modification time in ns), whether it was
`tagged` or `failed` (with the decoder's one-line reason), the clip's length, whether it
is silent throughout, the tags it gets at the thresholds used, and every tag's
probability; SQLite also keeps each clip's embedding (float16), JSON lines too (base64),
CSV does not. What tagged them (run, checkpoint and its sha256, tags, thresholds, input
format) is SQLite's `meta` and `labels` tables, or for CSV and JSON lines a file beside
them (`<out>.meta.json`). The schema is in docs/library.md.

Rows are committed (SQLite) or written with one `write` call each (CSV, JSON lines) as
soon as a file is done, so a crash or Ctrl-C loses only the files being tagged. A file
tagged again (it changed, or it failed before) gets its row replaced: in SQLite at once;
CSV and JSON lines append the new row and drop the old one when the library is closed
(until then, a path's last row counts). One writer at a time: the file is locked
(`flock`) while it is open, and a second `tag` into it is refused.
"""

from __future__ import annotations

import base64
import csv
import fcntl
import io
import json
import os
import sqlite3
import time
from contextlib import closing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from autotag.errors import UsageError
from autotag.store.files import JsonFileError, load_json, write_json_atomic
from autotag.text import shown

#: Output formats by the suffix of `--out`; a name without a suffix is SQLite.
FORMATS = {"": "sqlite", ".sqlite": "sqlite", ".sqlite3": "sqlite", ".db": "sqlite", ".csv": "csv", ".jsonl": "jsonl"}
#: The `meta` value that marks a file as a library autotag wrote, and its layout's version.
KIND, VERSION = "autotag library", 1
#: The embedding's encoding in SQLite's BLOB and JSON lines' base64.
EMBEDDING_DTYPE = "<f2"
#: Columns of a row before the tags' probabilities (CSV's header; JSON lines' keys).
ROW_FIELDS = ("path", "size", "mtime_ns", "status", "error", "duration", "silent", "tags")

TAGGED, FAILED = "tagged", "failed"


@dataclass(frozen=True)
class LibraryMeta:
    """What tagged a library: a resumed library must be tagged by the same model and thresholds."""

    run: str
    checkpoint: str
    checkpoint_sha256: str
    labels: list[str]
    thresholds: list[float]  # per label, in label order
    sample_rate: int
    chunk_samples: int
    embedding_width: int

    def differs(self, other: LibraryMeta, out: Path) -> str | None:
        """Why a library written with `other` cannot be resumed with this, or None."""
        if (other.checkpoint_sha256, other.labels) != (self.checkpoint_sha256, self.labels):
            return (
                f"{out.name} was tagged by another model (run {other.run}, {other.checkpoint}); "
                "resume it with that run, or give a new --out"
            )
        if other.thresholds != self.thresholds:
            return f"{out.name} decided its tags at other thresholds; resume it with the same --threshold"
        return None


@dataclass(frozen=True)
class Known:
    """What a library holds of a file: the file as it was, and its outcome."""

    size: int
    mtime_ns: int
    status: str


@dataclass
class Row:
    """One file's row. `probabilities` are in label order; failed rows have none."""

    path: str
    size: int
    mtime_ns: int
    status: str
    error: str | None = None
    duration: float | None = None
    silent: bool | None = None
    tags: list[str] = field(default_factory=list)
    probabilities: list[float] | None = None
    embedding: np.ndarray | None = None  # float16, `embedding_width` values; None: failed or silent


def library_format(out: Path) -> str:
    """'sqlite', 'csv' or 'jsonl' by the suffix of `out`.

    Raises:
        UsageError: any other suffix.
    """
    fmt = FORMATS.get(out.suffix.lower())
    if fmt is None:
        known = ", ".join(s for s in FORMATS if s)
        raise UsageError(f"--out {shown(out.name)}: the suffix chooses the format: {known} (or none: SQLite)")
    return fmt


def check_out(out: Path, resume: bool) -> None:
    """Refuse an `--out` that cannot be written before anything is done (exit 2, one line).

    Raises:
        UsageError: a bad suffix, a folder, a missing parent folder, or an existing file without `resume`.
    """
    library_format(out)
    if out.is_dir():
        raise UsageError(f"--out {out} is a folder; give a file")
    if not out.parent.is_dir():
        raise UsageError(f"--out {out}: there is no folder {out.parent}")
    if out.exists() and not resume:
        raise UsageError(
            f"{out} exists: add --resume to go on with it (changed files are tagged again), or give a new --out"
        )


def open_library(out: Path, meta: LibraryMeta, resume: bool) -> Library:
    """The library at `out`, new, or resumed when `resume` and it exists.

    Raises:
        UsageError: see `check_out`; a file that is no library autotag wrote, one written by
            another model or at other thresholds, or one another `tag` is writing.
    """
    check_out(out, resume)
    fmt = library_format(out)
    return SqliteLibrary(out, meta) if fmt == "sqlite" else LineLibrary(out, meta, fmt)


class Library:
    """Rows of files, looked up by path; see the module's docstring."""

    out: Path

    def known(self, path: str) -> Known | None:
        raise NotImplementedError

    def write(self, row: Row) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _lock(fd: int, out: Path) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise UsageError(f"{out} is being written by another `autotag tag`; wait for it to end") from None


def _not_a_library(out: Path, why: str) -> UsageError:
    return UsageError(f"{out} is not a library autotag wrote ({why}); give a new --out")


_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE labels (tag TEXT PRIMARY KEY, position INTEGER NOT NULL UNIQUE, threshold REAL NOT NULL);
CREATE TABLE files (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('tagged', 'failed')),
    error TEXT,
    duration REAL,
    silent INTEGER,
    tags TEXT
);
CREATE TABLE probabilities (
    file_id INTEGER NOT NULL REFERENCES files (id) ON DELETE CASCADE,
    tag TEXT NOT NULL REFERENCES labels (tag),
    probability REAL NOT NULL,
    PRIMARY KEY (file_id, tag)
) WITHOUT ROWID;
CREATE INDEX probabilities_by_tag ON probabilities (tag, probability);
CREATE TABLE embeddings (file_id INTEGER PRIMARY KEY REFERENCES files (id) ON DELETE CASCADE, vector BLOB NOT NULL);
CREATE VIEW file_tags AS
    SELECT f.path, p.tag, p.probability FROM probabilities p
    JOIN files f ON f.id = p.file_id JOIN labels l ON l.tag = p.tag
    WHERE p.probability >= l.threshold AND NOT f.silent;
"""


class SqliteLibrary(Library):
    """A library in SQLite: tables `meta`, `labels`, `files`, `probabilities`, `embeddings`
    and the view `file_tags` (docs/library.md). A commit per file, in WAL mode while it is
    written (a commit is then no fsync), and one plain database file again when closed."""

    def __init__(self, out: Path, meta: LibraryMeta) -> None:
        self.out, self.meta = out, meta
        existed = out.exists()
        self._fd = os.open(out, os.O_RDWR | os.O_CREAT, 0o644)
        _lock(self._fd, out)
        try:
            self.db = sqlite3.connect(out, isolation_level=None)
            self.db.execute("PRAGMA foreign_keys = ON")
            if existed and out.stat().st_size:
                self._check(meta)
            else:
                self._create(meta)
            self.db.execute("PRAGMA journal_mode = WAL")
            self.db.execute("PRAGMA synchronous = NORMAL")
        except BaseException:
            self._release()
            if not existed:
                out.unlink(missing_ok=True)
            raise

    def _create(self, meta: LibraryMeta) -> None:
        with self._transaction():
            self.db.executescript(f"BEGIN;{_SCHEMA}")
            values = {"kind": KIND, "version": VERSION, **asdict(meta)}
            values.update(
                embedding_dtype="float16 little-endian", created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            )
            self.db.executemany(
                "INSERT INTO meta VALUES (?, ?)",
                [
                    (k, v if isinstance(v, str) else json.dumps(v))
                    for k, v in values.items()
                    if k not in ("labels", "thresholds")
                ],
            )
            self.db.executemany(
                "INSERT INTO labels VALUES (?, ?, ?)",
                [(t, i, h) for i, (t, h) in enumerate(zip(meta.labels, meta.thresholds))],
            )

    def _check(self, meta: LibraryMeta) -> None:
        try:
            stored = dict(self.db.execute("SELECT key, value FROM meta").fetchall())
            labels = self.db.execute("SELECT tag, threshold FROM labels ORDER BY position").fetchall()
        except sqlite3.DatabaseError as exc:
            raise _not_a_library(self.out, str(exc)) from None
        if stored.get("kind") != KIND or stored.get("version") != str(VERSION):
            raise _not_a_library(self.out, "no autotag library's meta table")
        try:
            previous = LibraryMeta(
                run=stored["run"],
                checkpoint=stored["checkpoint"],
                checkpoint_sha256=stored["checkpoint_sha256"],
                labels=[t for t, _ in labels],
                thresholds=[h for _, h in labels],
                sample_rate=int(stored["sample_rate"]),
                chunk_samples=int(stored["chunk_samples"]),
                embedding_width=int(stored["embedding_width"]),
            )
        except (KeyError, ValueError) as exc:
            raise _not_a_library(self.out, f"its meta table lacks {exc}") from None
        why = meta.differs(previous, self.out)
        if why:
            raise UsageError(why)

    def _transaction(self) -> _Transaction:
        return _Transaction(self.db)

    def known(self, path: str) -> Known | None:
        # Closed at once, even when a Ctrl-C comes meanwhile: a statement left open would hold
        # a read lock that keeps `close` from folding the WAL back in.
        with closing(self.db.execute("SELECT size, mtime_ns, status FROM files WHERE path = ?", (path,))) as rows:
            found = rows.fetchone()
        return Known(*found) if found else None

    def write(self, row: Row) -> None:
        with self._transaction():
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute("DELETE FROM files WHERE path = ?", (row.path,))  # its probabilities and embedding too
            cursor = self.db.execute(
                "INSERT INTO files (path, size, mtime_ns, status, error, duration, silent, tags)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    row.path,
                    row.size,
                    row.mtime_ns,
                    row.status,
                    row.error,
                    row.duration,
                    row.silent,
                    ";".join(row.tags) if row.status == TAGGED else None,
                ),
            )
            file_id = cursor.lastrowid
            if row.probabilities is not None:
                self.db.executemany(
                    "INSERT INTO probabilities VALUES (?, ?, ?)",
                    [(file_id, t, p) for t, p in zip(self.meta.labels, row.probabilities)],
                )
            if row.embedding is not None:
                blob = np.asarray(row.embedding, dtype=EMBEDDING_DTYPE).tobytes()
                self.db.execute("INSERT INTO embeddings VALUES (?, ?)", (file_id, blob))

    def close(self) -> None:
        if self._fd < 0:
            return
        try:
            self.db.execute("PRAGMA journal_mode = DELETE")  # one file again: the WAL is folded in
        except sqlite3.Error:
            pass  # a reader has it open (the sqlite3 shell, pandas): the WAL stays beside it, and is read with it
        self._release()

    def _release(self) -> None:
        if hasattr(self, "db"):
            self.db.close()
        if self._fd >= 0:
            os.close(self._fd)  # and its lock
            self._fd = -1


class _Transaction:
    """COMMIT when the block ends, ROLLBACK when it raises (the connection is in autocommit mode)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type | None, *exc: object) -> None:
        if not self.db.in_transaction:
            return
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")


class LineLibrary(Library):
    """A library as CSV or JSON lines: a line per row, appended; `<out>.meta.json` beside it.

    Resuming reads the rows once into an index of paths (their size, time and outcome):
    what a resumed CSV costs in memory grows with its files, which SQLite's lookups do not.
    """

    def __init__(self, out: Path, meta: LibraryMeta, fmt: str) -> None:
        self.out, self.meta, self.fmt = out, meta, fmt
        self.meta_file = out.with_name(out.name + ".meta.json")
        self._index: dict[str, Known] = {}
        self._replaced: set[str] = set()
        existed = out.exists()
        self._fd = os.open(out, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        _lock(self._fd, out)
        try:
            if existed and out.stat().st_size:
                self._check(meta)
                self._read_index()
            else:
                write_json_atomic(self.meta_file, {"kind": KIND, "version": VERSION, **asdict(meta)})
                if fmt == "csv":
                    self._append(self._csv_line([*ROW_FIELDS, *meta.labels]))
        except BaseException:
            os.close(self._fd)
            self._fd = -1
            if not existed:
                out.unlink(missing_ok=True)
            raise

    def _check(self, meta: LibraryMeta) -> None:
        try:
            stored = load_json(self.meta_file)
            if stored.get("kind") != KIND or stored.get("version") != VERSION:
                raise ValueError("not autotag's")
            previous = LibraryMeta(**{k: v for k, v in stored.items() if k not in ("kind", "version")})
        except FileNotFoundError:
            raise _not_a_library(self.out, f"{self.meta_file.name} is missing") from None
        except (JsonFileError, ValueError, TypeError, AttributeError) as exc:
            raise _not_a_library(self.out, f"{self.meta_file.name}: {exc}") from None
        why = meta.differs(previous, self.out)
        if why:
            raise UsageError(why)

    def _read_index(self) -> None:
        """Every row's path, size, time and outcome; a last line a crash cut short is cut off."""
        with open(self.out, "rb") as fh:
            data_end = fh.seek(0, os.SEEK_END)
            fh.seek(max(0, data_end - 1))
            if data_end and fh.read(1) != b"\n":
                whole = self.out.read_bytes().rfind(b"\n") + 1
                os.truncate(self.out, whole)
        with open(self.out, encoding="utf-8", newline="") as fh:
            rows = csv.DictReader(fh) if self.fmt == "csv" else (json.loads(line) for line in fh if line.strip())
            if self.fmt == "csv" and rows.fieldnames != [*ROW_FIELDS, *self.meta.labels]:
                raise _not_a_library(self.out, "its header is not a library's")
            try:
                for row in rows:
                    self._index[row["path"]] = Known(int(row["size"]), int(row["mtime_ns"]), row["status"])
            except (KeyError, ValueError, TypeError) as exc:
                raise _not_a_library(self.out, f"a row without a valid {exc}") from None

    def known(self, path: str) -> Known | None:
        return self._index.get(path)

    def write(self, row: Row) -> None:
        if row.path in self._index:
            self._replaced.add(row.path)
        self._append(self._csv_row(row) if self.fmt == "csv" else self._json_row(row))
        self._index[row.path] = Known(row.size, row.mtime_ns, row.status)

    def _append(self, line: bytes) -> None:
        os.write(self._fd, line)  # one call per row: a kill leaves whole rows

    @staticmethod
    def _csv_line(values: list[Any]) -> bytes:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(values)
        return buf.getvalue().encode("utf-8")

    def _csv_row(self, row: Row) -> bytes:
        probabilities = [f"{p:.6f}" for p in row.probabilities] if row.probabilities else [""] * len(self.meta.labels)
        silent = "" if row.silent is None else int(row.silent)
        duration = "" if row.duration is None else f"{row.duration:.3f}"
        fields = [row.path, row.size, row.mtime_ns, row.status, row.error or "", duration, silent, ";".join(row.tags)]
        return self._csv_line([*fields, *probabilities])

    def _json_row(self, row: Row) -> bytes:
        values: dict[str, Any] = {k: getattr(row, k) for k in ROW_FIELDS}
        values["duration"] = None if row.duration is None else round(row.duration, 3)
        values["probabilities"] = (
            None if row.probabilities is None else {t: round(p, 6) for t, p in zip(self.meta.labels, row.probabilities)}
        )
        values["embedding"] = (
            None
            if row.embedding is None
            else base64.b64encode(np.asarray(row.embedding, dtype=EMBEDDING_DTYPE).tobytes()).decode("ascii")
        )
        return (json.dumps(values, ensure_ascii=False) + "\n").encode("utf-8")

    def close(self) -> None:
        if self._fd < 0:
            return
        try:
            if self._replaced:
                self._drop_replaced_rows()
        finally:
            os.close(self._fd)
            self._fd = -1

    def _drop_replaced_rows(self) -> None:
        """Rewrite the file with only the last row of each path tagged again (atomically)."""
        last: dict[str, int] = {}
        lines = self._lines()
        for number, (path, _) in enumerate(lines):
            if path in self._replaced:
                last[path] = number
        tmp = self.out.with_name(f".{self.out.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as fh:
                for number, (path, line) in enumerate(self._lines()):
                    if path not in last or last[path] == number:
                        fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.out)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def _lines(self):  # noqa: ANN202 - Iterator[tuple[str | None, bytes]]
        """(path or None for the header, the row's bytes) of every row in the file."""
        with open(self.out, "rb") as fh:
            if self.fmt == "jsonl":
                for line in fh:
                    yield json.loads(line)["path"], line
                return
            text = io.TextIOWrapper(fh, encoding="utf-8", newline="")
            reader = csv.reader(text)
            for number, values in enumerate(reader):
                yield (None if number == 0 else values[0]), self._csv_line(values)
