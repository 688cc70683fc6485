"""Readers for the three data set layouts, all producing one `TaggedDataset`.

- csv: audio files + `tags.csv` with columns `path,tags[,split]`, tags joined by `;`.
- mtat: MagnaTagATune `annotations_final.csv` as published (TAB separated, quoted, maybe
  CRLF; `clip_id`, one 0/1 column per tag, `mp3_path`), audio in folders `0`..`f`.
- jamendo: MTG-Jamendo `autotagging*.tsv` and `splits/split-K/autotagging*-{train,...}.tsv`.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import os
import stat
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from autotag.errors import AutotagError

SPLITS = ("train", "valid", "test")
_SPLIT_ALIASES = {"train": "train", "valid": "valid", "validation": "valid", "val": "valid", "test": "test"}
MTAT_FILE = "annotations_final.csv"
CSV_FILE = "tags.csv"
#: Largest metadata file read. The published ones are far smaller: MagnaTagATune's
#: annotations_final.csv about 20 MB (25,863 clips x 190 quoted fields), MTG-Jamendo's
#: autotagging.tsv about 8 MB (55,701 tracks); 64 MB also holds a tags.csv of a million
#: clips. A bigger file is not metadata, and is refused before it is read into memory.
MAX_METADATA_BYTES = 64 * 2**20


class DataFormatError(AutotagError):
    """The folder is not a data set of the requested or any known format."""


@dataclass(frozen=True)
class Clip:
    """One annotated audio file. `path` is absolute; `tags` are label strings."""

    id: str
    path: Path
    tags: tuple[str, ...]
    split: str


@dataclass
class TaggedDataset:
    """A data set in memory: its clips, label vocabulary, and what the reader dropped.

    Attributes:
        labels: Tag vocabulary in model output order.
        dropped: Reader-level problems, one human-readable line each.
    """

    root: Path
    format: str
    clips: list[Clip]
    labels: list[str]
    dropped: list[str] = field(default_factory=list)

    def split(self, name: str) -> list[Clip]:
        return [c for c in self.clips if c.split == name]

    def targets(self) -> np.ndarray:
        """(clips, tags) 0/1 matrix of every clip in `labels` order, e.g. for tag co-occurrence."""
        return multi_hot(self.clips, self.labels)


def multi_hot(clips: Sequence[Clip], labels: Sequence[str]) -> np.ndarray:
    """(clips, tags) float32 0/1 targets in `labels` order; tags outside `labels` are ignored.

    NumPy, not torch: the dashboard draws these without loading the training stack.
    """
    col = {t: j for j, t in enumerate(labels)}
    out = np.zeros((len(clips), len(labels)), dtype=np.float32)
    for i, clip in enumerate(clips):
        out[i, [col[t] for t in clip.tags if t in col]] = 1.0
    return out


def detect_format(root: Path) -> str:
    """Name the layout of `root`, or raise DataFormatError saying what was looked for.

    A metadata file's name decides, whatever it is: its reader then says what is wrong
    with it (a folder, unreadable), which "not a known data set" would hide.
    """
    if not root.is_dir():
        raise DataFormatError(f"data folder {root} does not exist or is not a folder")
    if _present(root / CSV_FILE):
        return "csv"
    if _present(root / MTAT_FILE):
        return "mtat"
    if _jamendo_meta_dir(root) is not None:
        return "jamendo"
    raise DataFormatError(
        f"{root} is not a known data set: expected {CSV_FILE} (plain folder), "
        f"{MTAT_FILE} (MagnaTagATune) or autotagging*.tsv (MTG-Jamendo)"
    )


def _present(path: Path) -> bool:
    """Whether something is at `path` (a broken link is nothing)."""
    try:
        return path.exists()
    except OSError:
        return False


def read_metadata(path: Path) -> str:
    """The text of a metadata file, or DataFormatError in one line that says what to do.

    Every reader opens its files here, so each refusal (not a file, unreadable, too big,
    not UTF-8, a NUL byte) reads the same whichever format. UTF-8 with or without a BOM
    is read, and UTF-16 with a BOM (Excel's "Unicode text"): its BOM makes it unambiguous.
    A NUL is looked for before decoding as UTF-8: in the first line it means UTF-16
    without a BOM, which is better said than the first byte UTF-8 cannot decode.
    """
    data = _read_bytes(path)
    utf16 = data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    encoding, name = ("utf-16", "UTF-16") if utf16 else ("utf-8-sig", "UTF-8")
    if not utf16 and (at := data.find(b"\0")) >= 0:
        raise _nul(path, data.count(b"\n", 0, at) + 1)
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].decode(encoding, errors="replace").count("\n") + 1
        what = f"byte 0x{data[exc.start]:02x}" if name == "UTF-8" else exc.reason
        raise DataFormatError(f"{path} is not {name} ({what} at line {line}): save it as UTF-8") from None
    if (at := text.find("\0")) >= 0:
        raise _nul(path, text.count("\n", 0, at) + 1)
    return text


def _nul(path: Path, line: int) -> DataFormatError:
    return DataFormatError(
        f"{path} line {line} holds a NUL byte: it is not text (or is UTF-16 without a byte-order mark); "
        "save it as UTF-8"
    )


def _read_bytes(path: Path) -> bytes:
    """At most MAX_METADATA_BYTES of a regular file; a pipe or device is refused, never waited on."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO would block a plain open
    except OSError as exc:
        raise DataFormatError(f"cannot read {path}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise DataFormatError(f"{path} is a folder, not a file")
        if not stat.S_ISREG(info.st_mode):
            raise DataFormatError(f"{path} is not a regular file")
        if info.st_size > MAX_METADATA_BYTES:
            raise DataFormatError(_too_big(path))
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read(MAX_METADATA_BYTES + 1)  # the file may have grown since fstat
    except OSError as exc:
        raise DataFormatError(f"cannot read {path}: {exc.strerror}") from None
    finally:
        os.close(fd)
    if len(data) > MAX_METADATA_BYTES:
        raise DataFormatError(_too_big(path))
    return data


def _too_big(path: Path) -> str:
    return (
        f"{path} has more than {MAX_METADATA_BYTES // 2**20} MB, far more than metadata "
        "(MagnaTagATune's has about 20 MB): is it the right file?"
    )


def _csv_rows(path: Path, **dialect: str) -> list[list[str]]:
    """Every row of a CSV or TSV metadata file; a malformed one is DataFormatError naming its line.

    No path, id or tag holds a line break, so a row over several lines is a quote left
    open (or closed rows later), refused where it starts. The csv module's field size
    limit stays as it is: a field beyond it is such a quote that swallowed the rest of the file.
    """
    reader = csv.reader(io.StringIO(read_metadata(path), newline=""), **dialect)
    rows = []
    while True:
        first = reader.line_num + 1  # the line the next row starts on
        try:
            rows.append(next(reader))
        except StopIteration:
            return rows
        except csv.Error as exc:
            if "field larger than field limit" not in str(exc):
                raise DataFormatError(f"{path} line {first}: {exc}") from None
            raise DataFormatError(
                f"{path} line {first}: a field longer than {csv.field_size_limit():,} characters "
                "(a quote opened and never closed?); close the quote or shorten the field"
            ) from None
        if reader.line_num > first:
            raise DataFormatError(
                f"{path} line {first}: a quoted field runs on to line {reader.line_num} "
                "(a quote opened and not closed?); close the quote on its line"
            )


def assign_splits(keys: list[str]) -> dict[str, str]:
    """80/10/10 train/valid/test split, independent of row order and machine."""
    order = sorted(keys, key=lambda k: hashlib.sha1(k.encode("utf-8")).hexdigest())
    n_train = round(len(order) * 0.8)
    n_valid = round(len(order) * 0.1)
    return {k: "train" if i < n_train else "valid" if i < n_train + n_valid else "test" for i, k in enumerate(order)}


def top_labels(tag_lists: list[tuple[str, ...]], top_n: int) -> list[str]:
    """The `top_n` most frequent tags, ties broken alphabetically so the order is stable."""
    counts = Counter(t for tags in tag_lists for t in tags)
    return [t for t, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top_n]]


def read_csv_folder(root: Path) -> TaggedDataset:
    path = root / CSV_FILE
    header, *body = [row for row in _csv_rows(path) if row] or [[]]  # blank lines skipped, as DictReader does
    columns = [c.strip() for c in header]
    if "path" not in columns or "tags" not in columns:
        raise DataFormatError(f"{path} must have columns path,tags[,split]; found {','.join(columns) or 'none'}")
    rows = [{k: (row[i].strip() if i < len(row) else "") for i, k in enumerate(columns) if k} for row in body]
    dropped: list[str] = []
    split_of: dict[str, str] = {}
    if "split" in columns:
        for row in rows:
            split = _SPLIT_ALIASES.get(row.get("split", "").lower())
            if split is None:
                dropped.append(f"{row['path']}: unknown split {row.get('split')!r} (use train, valid or test)")
            else:
                split_of[row["path"]] = split
    else:
        split_of = assign_splits([r["path"] for r in rows])
    clips = [
        Clip(r["path"], (root / r["path"]).resolve(), _split_tags(r["tags"]), split_of[r["path"]])
        for r in rows
        if r["path"] in split_of
    ]
    labels = sorted({t for c in clips for t in c.tags})
    return TaggedDataset(root, "csv", clips, labels, dropped)


def _split_tags(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(t.strip() for t in text.split(";") if t.strip()))


def read_mtat(root: Path, top_n: int, audio_root: Path | None = None) -> TaggedDataset:
    """MagnaTagATune with the usual folder split: `0`-`b` train, `c` valid, `d`-`f` test."""
    path = root / MTAT_FILE
    rows = _csv_rows(path, delimiter="\t", quotechar='"')
    if not rows or "clip_id" not in rows[0] or "mp3_path" not in rows[0]:
        raise DataFormatError(f"{path} must be TAB separated with clip_id, tag columns and mp3_path")
    header = rows[0]
    id_col, path_col = header.index("clip_id"), header.index("mp3_path")
    tag_cols = [i for i in range(len(header)) if i not in (id_col, path_col)]
    audio = audio_root or _first_dir(root, ["", "mp3", "audio"], probe="0")
    entries, dropped = [], []
    for line_no, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            dropped.append(f"{MTAT_FILE} line {line_no}: {len(row)} fields, expected {len(header)}")
            continue
        folder = row[path_col].split("/", 1)[0].lower()
        if len(folder) != 1 or folder not in "0123456789abcdef":
            dropped.append(f"clip {row[id_col]}: mp3_path {row[path_col]!r} is not under a folder 0..f")
            continue
        split = "train" if folder in "0123456789ab" else "valid" if folder == "c" else "test"
        tags = tuple(header[i] for i in tag_cols if row[i].strip() == "1")
        entries.append(Clip(row[id_col], audio / row[path_col], tags, split))
    return _keep_top(root, "mtat", entries, top_n, dropped)


def _keep_top(root: Path, fmt: str, clips: list[Clip], top_n: int, dropped: list[str]) -> TaggedDataset:
    labels = top_labels([c.tags for c in clips if c.split == "train"] or [c.tags for c in clips], top_n)
    keep = set(labels)
    clips = [Clip(c.id, c.path, tuple(t for t in c.tags if t in keep), c.split) for c in clips]
    return TaggedDataset(root, fmt, clips, labels, dropped)


def _jamendo_meta_dir(root: Path) -> Path | None:
    for cand in (root, root / "data"):
        if any(cand.glob("autotagging*.tsv")) or (cand / "splits").is_dir():
            return cand
    return None


def _first_dir(root: Path, names: list[str], probe: str) -> Path:
    """The first of root/name that contains `probe`; root itself when none does."""
    for name in names:
        cand = root / name if name else root
        if (cand / probe).exists():
            return cand
    return root


def read_jamendo(
    root: Path, subset: str, split_index: int, top_n: int, audio_root: Path | None = None
) -> TaggedDataset:
    """MTG-Jamendo from its split files; paths in them are relative to the audio root."""
    meta = _jamendo_meta_dir(root)
    if meta is None:
        raise DataFormatError(f"{root} has no autotagging*.tsv (MTG-Jamendo metadata)")
    stem = "autotagging" if subset == "all" else f"autotagging_{subset}"
    split_dir = meta / "splits" / f"split-{split_index}"
    files = {s: split_dir / f"{stem}-{name}.tsv" for s, name in zip(SPLITS, ("train", "validation", "test"))}
    missing = [str(p) for p in files.values() if not _present(p)]
    if missing:
        raise DataFormatError(f"MTG-Jamendo split files not found: {', '.join(missing)}")
    audio = audio_root or _guess_jamendo_audio(root, meta)
    clips, dropped = [], []
    for split, path in files.items():
        c, d = _read_jamendo_tsv(path, split, audio)
        clips += c
        dropped += d
    return _keep_top(root, "jamendo", clips, top_n, dropped)


def _guess_jamendo_audio(root: Path, meta: Path) -> Path:
    for cand in (root / "audio", root / "raw_30s" / "audio", root / "mp3", meta.parent / "audio", root):
        if cand.is_dir() and any(cand.glob("[0-9][0-9]")):
            return cand
    return root


def _read_jamendo_tsv(path: Path, split: str, audio: Path) -> tuple[list[Clip], list[str]]:
    clips, dropped = [], []
    lines = read_metadata(path).splitlines()
    if not lines or not lines[0].startswith("TRACK_ID\t"):
        raise DataFormatError(f"{path} must start with the header TRACK_ID ARTIST_ID ALBUM_ID PATH DURATION TAGS")
    for line_no, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 5:
            dropped.append(f"{path.name} line {line_no}: {len(fields)} fields, expected at least 5")
            continue
        file = _published_download(audio / fields[3])
        tags = tuple(dict.fromkeys(t.strip() for t in fields[5:] if t.strip()))
        clips.append(Clip(fields[0], file, tags, split))
    return clips, dropped


def _published_download(file: Path) -> Path:
    """`file`, or the published low-quality download (`ID.low.mp3`) when only that one is there."""
    try:
        low = file.with_suffix(".low.mp3")
        return low if not file.exists() and low.exists() else file
    except (OSError, ValueError):  # a name this file system cannot look up: the clip's check says so
        return file


def data_roots() -> list[Path]:
    """Folders data sets must live in (`$AUTOTAG_DATA_ROOTS`, colon separated); [] = anywhere."""
    raw = os.environ.get("AUTOTAG_DATA_ROOTS", "")
    return [Path(p).expanduser().resolve() for p in raw.split(os.pathsep) if p.strip()]


def _inside(path: Path, base: Path) -> bool:
    return path == base or base in path.parents


def _lookup_error(path: Path) -> str | None:
    """Why the file system cannot even look `path` up (a name too long, no permission), or None.

    A missing file is None: the data set's checks report it with the other missing files.
    """
    try:
        path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    return None


def _keep_contained(ds: TaggedDataset, base: Path) -> TaggedDataset:
    """Drop clips whose path (symlinks followed) leaves `base` (`../`, absolute paths, links out),
    or that the file system cannot look up, which every later look at the clip would raise on."""
    kept = []
    for clip in ds.clips:
        if not _inside(clip.path.resolve(), base):
            ds.dropped.append(f"{clip.id}: audio path leaves the data set folder {base}; refused")
        elif (problem := _lookup_error(clip.path)) is not None:
            ds.dropped.append(f"{clip.id}: audio path cannot be looked up ({problem}); refused")
        else:
            kept.append(clip)
    ds.clips = kept
    return ds


def load_dataset(
    root: str | Path,
    format: str = "auto",
    top_n: int = 50,
    jamendo_subset: str = "top50tags",
    split_index: int = 0,
    audio_root: str | Path | None = None,
) -> TaggedDataset:
    """Read a data set of any supported layout. Raises DataFormatError with the reason."""
    root = Path(root).expanduser().resolve()
    allowed = data_roots()
    for folder in [root] + ([Path(audio_root).expanduser().resolve()] if audio_root else []):
        if allowed and not any(_inside(folder, base) for base in allowed):
            raise DataFormatError(f"{folder} is outside the allowed data folders ({', '.join(map(str, allowed))})")
    if not root.is_dir():
        raise DataFormatError(f"data folder {root} does not exist or is not a folder")
    fmt = detect_format(root) if format == "auto" else format
    audio = Path(audio_root).expanduser().resolve() if audio_root else None
    if fmt == "csv":
        if not _present(root / CSV_FILE):
            raise DataFormatError(f"{root} has no {CSV_FILE}")
        return _keep_contained(read_csv_folder(root), root)
    if fmt == "mtat":
        if not _present(root / MTAT_FILE):
            raise DataFormatError(f"{root} has no {MTAT_FILE}")
        ds = read_mtat(root, top_n, audio)
        return _keep_contained(ds, audio or _first_dir(root, ["", "mp3", "audio"], probe="0"))
    if fmt == "jamendo":
        meta = _jamendo_meta_dir(root)
        ds = read_jamendo(root, jamendo_subset, split_index, top_n, audio)
        return _keep_contained(ds, audio or _guess_jamendo_audio(root, meta or root).resolve())
    raise DataFormatError(f"unknown data format {fmt!r}; use auto, csv, mtat or jamendo")
