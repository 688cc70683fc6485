"""A tagged library read back: its facts, and pages of its rows filtered, searched and sorted in SQL.

The Library page's queries, over the SQLite file `tag --out` writes (docs/library.md),
opened read-only (`file:...?mode=ro`) and checked to be an autotag library of a version
this code reads. Nothing here loads all rows: a `Selection` (tags each at or above a
minimum, a text in the path, outcomes) becomes one WHERE clause, a page is a LIMIT and
OFFSET, its size a COUNT, and the CSV of a selection is streamed from a cursor. A library
that `tag` is still writing is in WAL mode, and reads see every committed row.

Each call opens its own connection and closes it before it returns: a reader that kept
one open would keep `tag`'s end from folding the WAL back into one file (and a page's
reruns and its download run on other threads). "More like this" is numpy brute force over
the stored float16 embeddings, read in blocks (memory: one block, not the library).
"""

from __future__ import annotations

import csv
import io
import os
import sqlite3
import stat
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import numpy as np

from autotag.audio.decode import AUDIO_EXTENSIONS
from autotag.data.formats import data_roots
from autotag.errors import AutotagError
from autotag.library.store import EMBEDDING_DTYPE, FAILED, KIND, ROW_FIELDS, TAGGED, VERSION
from autotag.paths import absolute
from autotag.text import one_line, shown

if TYPE_CHECKING:  # torch comes in only when a clip is tagged (`clip_tagger`)
    from autotag.serving.tagger import Tagger

#: What a row can be: tagged (with tags), silent (tagged, silent throughout: no tags), failed.
OUTCOMES = ("tagged", "silent", "failed")
#: What a page can be sorted by; "probability" sorts by `Selection.sort_tag`'s.
SORTS = ("path", "duration", "probability")
#: File names the page offers as libraries when it looks in a folder.
SUFFIXES = (".sqlite", ".sqlite3", ".db")
#: Embeddings read per block by `similar`.
BLOCK = 8192
#: The largest audio file `read_clip` gives to a player (the dashboard's upload limit).
MAX_CLIP_BYTES = 100 * 1024 * 1024


class LibraryFileError(AutotagError):
    """A path that is not an autotag library this code can read; the message is one line."""


@dataclass(frozen=True)
class Facts:
    """What a library is: where, what tagged it, and how many files came out how."""

    path: Path
    run: str
    checkpoint: str
    checkpoint_sha256: str
    created: str
    labels: list[str]
    thresholds: dict[str, float]
    embedding_width: int
    tagged: int  # with their tags (not silent)
    silent: int
    failed: int
    writing: bool  # in WAL mode: `tag` is writing it (or ended while a reader held it)

    @property
    def files(self) -> int:
        return self.tagged + self.silent + self.failed


@dataclass(frozen=True)
class Selection:
    """Which rows, in what order.

    Attributes:
        tags: (tag, minimum) pairs: a row must have each tag's probability at or above its
            minimum; None as a minimum means the tag's threshold in the library (the row gets
            the tag). A silent or failed row has no tags and never matches.
        text: A part of the path (case-insensitive for ASCII letters; `%` and `_` are plain).
        outcomes: Any of OUTCOMES; empty means all.
        sort: One of SORTS; "probability" sorts by `sort_tag`'s (rows without one last).
        descending: Largest first (a missing duration or probability still last).
    """

    tags: tuple[tuple[str, float | None], ...] = ()
    text: str = ""
    outcomes: tuple[str, ...] = ()
    sort: str = "path"
    sort_tag: str | None = None
    descending: bool = False


@dataclass(frozen=True)
class Page:
    """Rows `first`..`first + len(rows) - 1` (from 0) of `total` selected, page `number` of `pages`."""

    rows: list[dict[str, Any]]
    total: int
    number: int
    pages: int
    first: int
    columns: list[str] = field(default_factory=list)  # the probability columns, one per tag shown

    def caption(self) -> str:
        if not self.total:
            return "no rows"
        return f"rows {self.first + 1}-{self.first + len(self.rows)} of {self.total}"


def _connect(path: Path) -> sqlite3.Connection:
    """`path` opened read-only (a `file:` URI: no file is created, nothing is ever written)."""
    db = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True)
    db.execute("PRAGMA query_only = ON")
    return db


@contextmanager
def _open(path: str | Path, counts: bool = False) -> Iterator[tuple[sqlite3.Connection, Facts]]:
    """A read-only connection to the library at `path` and its facts; closed when the block ends.

    Its counts by outcome (a scan of the files table) only with `counts`; zeros otherwise.

    Raises:
        LibraryFileError: not a file, not SQLite, not an autotag library, or a version this
            code does not read.
    """
    path = library_path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise LibraryFileError(f"{shown(str(path))}: no such file") from None
    except (OSError, ValueError) as exc:  # a NUL in the name, a loop of links, no permission
        raise LibraryFileError(f"{shown(str(path))}: cannot be read ({one_line(str(exc), 120)})") from None
    if not stat.S_ISREG(info.st_mode):
        kind = "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        raise LibraryFileError(f"{shown(str(path))} is {kind}: give a library file (`tag --out lib.sqlite`)")
    try:
        db = _connect(path)
    except sqlite3.Error as exc:
        raise LibraryFileError(f"{path.name} cannot be opened: {one_line(str(exc), 120)}") from None
    try:
        facts = _facts(db, path, counts)
        yield db, facts
    except sqlite3.Error as exc:  # damaged after the check, or a file replaced meanwhile
        raise LibraryFileError(f"{path.name}: reading it failed ({one_line(str(exc), 120)})") from None
    finally:
        db.close()


def library_path(given: str | Path, what: str = "a library") -> Path:
    """A library's path (or another the page is given: `what` it is) as a user gave it, made
    absolute (symlinks resolved).

    Raises:
        LibraryFileError: a name no file system takes (a NUL, a loop of links), or outside
            `$AUTOTAG_DATA_ROOTS` when that is set.
    """
    try:
        path = absolute(given)
    except (OSError, RuntimeError, ValueError) as exc:
        raise LibraryFileError(f"{shown(str(given))}: not a path ({one_line(str(exc), 120)})") from None
    _inside_roots(path, what)
    return path


#: A row's outcome in SQL (`f` is the files table).
_OUTCOME = f"CASE WHEN f.status = '{FAILED}' THEN 'failed' WHEN f.silent THEN 'silent' ELSE 'tagged' END"


def _facts(db: sqlite3.Connection, path: Path, counts: bool) -> Facts:
    try:
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
    except sqlite3.DatabaseError as exc:  # "file is not a database", "no such table: meta"
        why = "not an SQLite file" if "not a database" in str(exc) else one_line(str(exc), 80)
        raise LibraryFileError(f"{path.name} is not a library autotag wrote ({why})") from None
    if meta.get("kind") != KIND:
        raise LibraryFileError(f"{path.name} is not a library autotag wrote (its meta table has no kind {KIND!r})")
    if meta.get("version") != str(VERSION):
        raise LibraryFileError(
            f"{path.name} is a library of format version {shown(meta.get('version'))}; "
            f"this autotag reads version {VERSION}"
        )
    try:
        labels = db.execute("SELECT tag, threshold FROM labels ORDER BY position").fetchall()
        by_outcome = dict.fromkeys(OUTCOMES, 0)
        if counts:
            by_outcome.update(db.execute(f"SELECT {_OUTCOME}, COUNT(*) FROM files f GROUP BY 1").fetchall())
        journal = db.execute("PRAGMA journal_mode").fetchone()[0]
        width = int(meta.get("embedding_width", 0))
    except (sqlite3.DatabaseError, ValueError) as exc:
        raise LibraryFileError(f"{path.name} is a damaged library ({one_line(str(exc), 80)})") from None
    return Facts(
        path=path,
        run=meta.get("run", ""),
        checkpoint=meta.get("checkpoint", ""),
        checkpoint_sha256=meta.get("checkpoint_sha256", ""),
        created=meta.get("created", ""),
        labels=[t for t, _ in labels],
        thresholds={t: float(h) for t, h in labels},
        embedding_width=width,
        writing=journal == "wal",
        **by_outcome,
    )


def read_facts(path: str | Path) -> Facts:
    """The library's facts, its counts by outcome included.

    Raises:
        LibraryFileError: see `_open`.
    """
    with _open(path, counts=True) as (_, facts):
        return facts


def _check(selection: Selection, facts: Facts) -> None:
    if selection.sort not in SORTS:
        raise LibraryFileError(f"sort by {shown(selection.sort)}: choose from {', '.join(SORTS)}")
    unknown = [t for t, _ in selection.tags if t not in facts.thresholds]
    if selection.sort == "probability" and selection.sort_tag not in facts.thresholds:
        unknown.append(str(selection.sort_tag))
    if unknown:
        raise LibraryFileError(f"{facts.path.name} has no tag {shown(unknown[0])}")
    bad = [o for o in selection.outcomes if o not in OUTCOMES]
    if bad:
        raise LibraryFileError(f"no outcome {shown(bad[0])}: choose from {', '.join(OUTCOMES)}")


def _where(selection: Selection, facts: Facts) -> tuple[list[str], list[Any]]:
    """The conditions on a selected row (the files table as `f`), and their parameters.

    A tag is `f.id IN (the files with its probability at or above the minimum)`: a range
    of the index `probabilities_by_tag` (tag, probability), read once per query.
    """
    where, params = [], []
    for tag, minimum in selection.tags:
        where.append("f.id IN (SELECT file_id FROM probabilities WHERE tag = ? AND probability >= ?)")
        params += [tag, facts.thresholds[tag] if minimum is None else float(minimum)]
    if selection.tags:
        where.append("NOT f.silent")  # a silent clip's probabilities are 0s; it gets no tag
    if selection.text:
        escaped = selection.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        where.append("f.path LIKE ? ESCAPE '\\'")
        params.append(f"%{escaped}%")
    outcomes = set(selection.outcomes)
    if outcomes and outcomes != set(OUTCOMES):
        each = {
            "tagged": f"(f.status = '{TAGGED}' AND NOT f.silent)",
            "silent": f"(f.status = '{TAGGED}' AND f.silent)",
            "failed": f"f.status = '{FAILED}'",
        }
        where.append("(" + " OR ".join(each[o] for o in OUTCOMES if o in outcomes) + ")")
    return where, params


def _ordered(
    selection: Selection, facts: Facts, columns: str, column_params: list[Any] | None = None
) -> tuple[str, list[Any]]:
    """SELECT `columns` (of `f`, the files table; their parameters `column_params`) of the
    selected rows, in the chosen order.

    Ties go by path, so pages never overlap. By a tag's probability, the rows that have one
    come first, read in the order of the index `probabilities_by_tag` (ties by row id),
    so a page is found without sorting the library; then the rows without one (failed),
    by path. A missing duration is last either way.
    """
    where, params = _where(selection, facts)
    own = column_params or []
    way = "DESC" if selection.descending else "ASC"
    if selection.sort != "probability":
        order = "f.path" if selection.sort == "path" else "f.duration IS NULL, f.duration"
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        tie = "" if selection.sort == "path" else ", f.path"
        return f"SELECT {columns} FROM files f{clause} ORDER BY {order} {way}{tie}", [*own, *params]
    with_one = " AND ".join(["s.tag = ?", *where])
    without = " AND ".join(["NOT EXISTS (SELECT 1 FROM probabilities WHERE file_id = f.id AND tag = ?)", *where])
    # UNION ALL of two ordered subqueries: SQLite yields the first's rows, then the second's,
    # and stops at the LIMIT (tests/library/test_browse.py checks the order).
    sql = (
        f"SELECT * FROM (SELECT {columns} FROM probabilities s CROSS JOIN files f ON f.id = s.file_id"
        f" WHERE {with_one} ORDER BY s.probability {way}, s.file_id {way})"
        f" UNION ALL SELECT * FROM (SELECT {columns} FROM files f WHERE {without} ORDER BY f.path)"
    )
    return sql, [*own, selection.sort_tag, *params, *own, selection.sort_tag, *params]


def _shown_tags(selection: Selection) -> list[str]:
    """The tags whose probabilities a page shows: those chosen, then the one sorted by."""
    shown_tags = [t for t, _ in selection.tags]
    if selection.sort == "probability" and selection.sort_tag not in shown_tags:
        shown_tags.append(str(selection.sort_tag))
    return shown_tags


def _count(db: sqlite3.Connection, selection: Selection, facts: Facts) -> int:
    where, params = _where(selection, facts)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    return db.execute(f"SELECT COUNT(*) FROM files f{clause}", params).fetchone()[0]


def count(path: str | Path, selection: Selection = Selection()) -> int:
    """How many rows `selection` selects.

    Raises:
        LibraryFileError: see `_open`; a tag, sort or outcome the library does not have.
    """
    with _open(path) as (db, facts):
        _check(selection, facts)
        return _count(db, selection, facts)


#: The columns of a row as `_row` takes them.
_ROW_COLUMNS = "f.id, f.path, f.size, f.mtime_ns, f.status, f.error, f.duration, f.silent, f.tags"


def _row(values: tuple) -> dict[str, Any]:
    file_id, path, size, mtime_ns, status, error, duration, silent, tag_text = values
    return {
        "id": file_id,
        "path": path,
        "size": size,
        "mtime_ns": mtime_ns,
        "outcome": FAILED if status == FAILED else "silent" if silent else "tagged",
        "error": error,
        "duration": duration,
        "tags": tag_text.split(";") if tag_text else [],
    }


def _probabilities(db: sqlite3.Connection, ids: list[int], tags: list[str]) -> dict[int, dict[str, float | None]]:
    """{id: {tag: probability or None}} of rows `ids` (a page's) and `tags`."""
    found: dict[int, dict[str, float | None]] = {i: dict.fromkeys(tags) for i in ids}
    if ids and tags:
        query = (
            f"SELECT file_id, tag, probability FROM probabilities WHERE file_id IN ({','.join('?' * len(ids))})"
            f" AND tag IN ({','.join('?' * len(tags))})"
        )
        for file_id, tag, probability in db.execute(query, [*ids, *tags]):
            found[file_id][tag] = probability
    return found


def page(path: str | Path, selection: Selection = Selection(), number: int = 1, size: int = 50) -> Page:
    """Page `number` (from 1, clamped to the pages there are) of the selected rows, `size` a page.

    Each row: id, path, size, mtime_ns, outcome, error, duration, tags (a list) and
    probabilities ({tag: probability or None} of the tags chosen and the one sorted by).

    Raises:
        LibraryFileError: see `count`.
    """
    with _open(path) as (db, facts):
        _check(selection, facts)
        total = _count(db, selection, facts)
        pages = max(1, -(-total // size))
        number = min(max(1, int(number)), pages)
        query, params = _ordered(selection, facts, _ROW_COLUMNS)
        with closing(db.execute(f"{query} LIMIT ? OFFSET ?", [*params, size, (number - 1) * size])) as cursor:
            rows = [_row(values) for values in cursor]
        tags = _shown_tags(selection)
        probabilities = _probabilities(db, [row["id"] for row in rows], tags)
        for row in rows:
            row["probabilities"] = probabilities[row["id"]]
        return Page(rows, total, number, pages, (number - 1) * size, tags)


def selection_csv(path: str | Path, selection: Selection = Selection()) -> bytes:
    """The selected rows as CSV, in the chosen order: `tag --out lib.csv`'s columns (path, size,
    mtime_ns, status, error, duration, silent, tags, then every tag's probability, six decimals).

    The rows come from a cursor a block at a time (never a list of all rows); the text is
    built in memory, as a download needs it whole.

    Raises:
        LibraryFileError: see `count`.
    """
    with _open(path) as (db, facts):
        _check(selection, facts)
        labels = facts.labels
        each = "".join(
            f", (SELECT probability FROM probabilities WHERE file_id = f.id AND tag = ?) AS p{i}"
            for i in range(len(labels))
        )
        columns = f"f.path, f.size, f.mtime_ns, f.status, f.error, f.duration, f.silent, f.tags{each}"
        query, params = _ordered(selection, facts, columns, labels)
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([*ROW_FIELDS, *labels])
        with closing(db.execute(query, params)) as cursor:
            while block := cursor.fetchmany(2000):
                for p, size, mtime_ns, status, error, duration, silent, tags, *probabilities in block:
                    writer.writerow(
                        [
                            p,
                            size,
                            mtime_ns,
                            status,
                            error or "",
                            "" if duration is None else f"{duration:.3f}",
                            "" if silent is None else int(silent),
                            tags or "",
                            *("" if v is None else f"{v:.6f}" for v in probabilities),
                        ]
                    )
        return out.getvalue().encode("utf-8")


def file_row(path: str | Path, file_id: int) -> dict[str, Any] | None:
    """One row by its id, with every tag's probability (None when it has none), or None when gone.

    Raises:
        LibraryFileError: see `_open`.
    """
    with _open(path) as (db, facts):
        found = db.execute(f"SELECT {_ROW_COLUMNS} FROM files f WHERE f.id = ?", (file_id,)).fetchone()
        if found is None:
            return None
        row = _row(found)
        stored = dict(db.execute("SELECT tag, probability FROM probabilities WHERE file_id = ?", (file_id,)))
        row["probabilities"] = {t: stored.get(t) for t in facts.labels}
        row["embedded"] = db.execute("SELECT 1 FROM embeddings WHERE file_id = ?", (file_id,)).fetchone() is not None
        return row


def file_id(path: str | Path, file_path: str) -> int | None:
    """The row id of the file at `file_path` as the library names it (absolute), or None.

    Raises:
        LibraryFileError: see `_open`.
    """
    with _open(path) as (db, _):
        found = db.execute("SELECT id FROM files WHERE path = ?", (file_path,)).fetchone()
    return found[0] if found else None


@dataclass(frozen=True)
class Neighbour:
    """A track near another: its row id, path, tags, and the cosine similarity of their embeddings."""

    id: int
    path: str
    similarity: float
    tags: list[str]


def similar(path: str | Path, file_id: int, k: int = 10) -> list[Neighbour]:
    """The `k` tracks nearest to row `file_id` by cosine similarity of their embeddings, nearest first.

    Numpy brute force: every embedding is read (BLOCK at a time, float16) and scored; ties
    go by path. A row without an embedding (failed, silent) has no neighbours: [].

    Raises:
        LibraryFileError: see `_open`; embeddings of another width than the library's.
    """
    with _open(path) as (db, facts):
        found = db.execute("SELECT vector FROM embeddings WHERE file_id = ?", (file_id,)).fetchone()
        if found is None or k < 1:
            return []
        return _nearest(db, facts, _vectors([found[0]], facts)[0], k, file_id)


def similar_to(path: str | Path, embedding: np.ndarray, k: int = 10) -> list[Neighbour]:
    """The `k` tracks nearest to `embedding` (a clip's from the library's own tagger,
    `clip_tagger`), as `similar` finds them; none for a zero embedding.

    Raises:
        LibraryFileError: see `_open`; an embedding of another width than the library's.
    """
    with _open(path) as (db, facts):
        if np.shape(embedding) != (facts.embedding_width,):
            raise LibraryFileError(
                f"{facts.path.name} holds embeddings of {facts.embedding_width} values, not {np.shape(embedding)}"
            )
        if k < 1 or not np.any(embedding):
            return []
        return _nearest(db, facts, np.asarray(embedding, np.float16).astype(np.float32), k, None)


def _nearest(db: sqlite3.Connection, facts: Facts, query: np.ndarray, k: int, leave_out: int | None) -> list[Neighbour]:
    """Brute force over every stored embedding but row `leave_out`'s; see `similar`."""
    query = query / max(float(np.linalg.norm(query)), np.finfo(np.float32).tiny)
    best_ids = np.empty(0, dtype=np.int64)
    best_scores = np.empty(0, dtype=np.float32)
    others = "SELECT file_id, vector FROM embeddings WHERE file_id IS NOT ?"
    with closing(db.execute(others, (leave_out,))) as cursor:
        while block := cursor.fetchmany(BLOCK):
            ids = np.fromiter((i for i, _ in block), dtype=np.int64, count=len(block))
            vectors = _vectors([v for _, v in block], facts)
            norms = np.sqrt(np.einsum("ij,ij->i", vectors, vectors))
            scores = np.divide(vectors @ query, norms, out=np.zeros(len(block), np.float32), where=norms > 0)
            best_ids = np.concatenate([best_ids, ids])
            best_scores = np.concatenate([best_scores, scores])
            if len(best_ids) > k:
                keep = np.argpartition(-best_scores, k - 1)[:k]
                best_ids, best_scores = best_ids[keep], best_scores[keep]
    if not len(best_ids):
        return []
    marks = ",".join("?" * len(best_ids))
    rows = {
        i: (p, t)
        for i, p, t in db.execute(f"SELECT id, path, tags FROM files WHERE id IN ({marks})", best_ids.tolist())
    }
    found_rows = [(float(s), int(i)) for i, s in zip(best_ids, best_scores) if int(i) in rows]
    found_rows.sort(key=lambda si: (-si[0], rows[si[1]][0]))
    return [
        Neighbour(i, rows[i][0], round(s, 6), rows[i][1].split(";") if rows[i][1] else []) for s, i in found_rows[:k]
    ]


def _vectors(blobs: list[bytes], facts: Facts) -> np.ndarray:
    """The float16 BLOBs as float32 rows (a zero row stays 0: similar to nothing).

    Raises:
        LibraryFileError: a BLOB of another length than `embedding_width` values.
    """
    width = facts.embedding_width
    data = b"".join(blobs)
    if width < 1 or len(data) != len(blobs) * width * 2:
        raise LibraryFileError(f"{facts.path.name}: an embedding is not {width} float16 values; the library is damaged")
    return np.frombuffer(data, dtype=EMBEDDING_DTYPE).reshape(len(blobs), width).astype(np.float32)


def find_libraries(*folders: str | Path) -> list[Path]:
    """The autotag libraries directly in `folders` (SQLite suffixes), newest first, each once."""
    found: dict[Path, float] = {}
    for folder in folders:
        try:
            entries = list(os.scandir(absolute(folder)))
        except (OSError, ValueError):
            continue
        for entry in entries:
            if not entry.name.lower().endswith(SUFFIXES) or entry.name.startswith("."):
                continue
            path = Path(entry.path)
            try:
                if entry.is_file() and path not in found:
                    read_facts(path)
                    found[path] = entry.stat().st_mtime
            except (LibraryFileError, OSError):
                continue
    return sorted(found, key=lambda p: (-found[p], str(p)))


def _inside_roots(path: Path, what: str) -> None:
    """Refuse `path` (absolute, symlinks resolved) outside `$AUTOTAG_DATA_ROOTS` when that is set."""
    roots = data_roots()
    if roots and not any(path == root or root in path.parents for root in roots):
        raise LibraryFileError(
            f"{shown(str(path))}: {what} must lie in AUTOTAG_DATA_ROOTS ({os.pathsep.join(map(str, roots))})"
        )


def read_clip(row: dict[str, Any]) -> bytes:
    """The audio file of a row, for a player: its bytes.

    Only a file with an audio suffix (wav, flac, ogg, mp3), inside `$AUTOTAG_DATA_ROOTS` when
    that is set: a library names files, and a page must not hand out any file it names.

    Raises:
        LibraryFileError: the file is gone, is no regular file, is over MAX_CLIP_BYTES, has
            another suffix, lies outside the data roots, or cannot be read (one line naming it).
    """
    path = Path(row["path"])
    if path.suffix.lower() not in AUDIO_EXTENSIONS:
        raise LibraryFileError(
            f"{shown(path.name)}: only {', '.join(e.lstrip('.') for e in AUDIO_EXTENSIONS)} files are played here"
        )
    try:
        _inside_roots(absolute(path), "a clip")
    except (OSError, RuntimeError, ValueError) as exc:  # a loop of links, a NUL in a hostile name
        raise LibraryFileError(f"{shown(str(path))} cannot be read ({one_line(str(exc), 120)})") from None
    try:
        # O_NONBLOCK: a named pipe put in a file's place must not hang the page on its open
        with os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as fh:
            info = os.fstat(fh.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise LibraryFileError(f"{shown(path.name)} is no longer a regular file")
            if info.st_size > MAX_CLIP_BYTES:
                raise LibraryFileError(
                    f"{shown(path.name)} is {info.st_size / 1e6:.0f} MB: over the "
                    f"{MAX_CLIP_BYTES // (1024 * 1024)} MB a player is given"
                )
            return fh.read(MAX_CLIP_BYTES + 1)
    except FileNotFoundError:
        raise LibraryFileError(f"{shown(str(path))} is gone: it was moved or deleted since it was tagged") from None
    except (OSError, ValueError) as exc:
        raise LibraryFileError(f"{shown(str(path))} cannot be read ({one_line(str(exc), 120)})") from None


def changed_since_tagged(row: dict[str, Any]) -> bool:
    """Whether the row's file has another size or modification time than when it was tagged."""
    try:
        info = Path(row["path"]).stat()
    except (OSError, ValueError):
        return True
    return (info.st_size, info.st_mtime_ns) != (row["size"], row["mtime_ns"])


def clip_tagger(facts: Facts) -> tuple[Tagger, str]:
    """The tagger that tagged the library (its run's checkpoint named in `meta`), and a note.

    The note is empty when that checkpoint is there with the recorded sha256; otherwise it
    says which checkpoint of the run is used instead (`Tagger.load`'s best). Torch is
    imported here, not when this module is.

    Raises:
        RunError: the run folder is gone or no run, or no checkpoint of it loads.
    """
    from autotag.digests import sha256
    from autotag.serving.tagger import Tagger
    from autotag.store.checkpoints import own_checkpoints
    from autotag.store.run_folder import RunError, RunFolder

    run = RunFolder(Path(facts.run))
    problem = run.not_a_run()
    if problem:
        raise RunError(f"the run that tagged {facts.path.name} cannot be used: {problem}")
    own = own_checkpoints(run, [run.checkpoints / Path(facts.checkpoint).name]) if facts.checkpoint else []
    if own and sha256(own[0].path) == facts.checkpoint_sha256:
        return Tagger.from_checkpoint(own[0].path), ""
    tagger = Tagger.load(run.path)
    why = "is gone" if not own else "has changed since"
    return tagger, f"the checkpoint that tagged the library ({facts.checkpoint}) {why}; using {tagger.checkpoint.name}"
