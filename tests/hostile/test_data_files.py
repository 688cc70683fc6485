"""Hostile metadata files (issue 23): each is refused in one line that names the file, the
line and what to do, or read for what it is; never a traceback, on the command line or on
the Data page. The readers of all three layouts open their files through one helper
(`autotag.data.formats.read_metadata`), so the cases are written against the plain
folder's tags.csv and the property tests feed every layout.
"""

from __future__ import annotations

import csv
import os
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from streamlit.testing.v1 import AppTest

from autotag.cli.main import main
from autotag.data.checks import DataSetError
from autotag.data.formats import MAX_METADATA_BYTES, DataFormatError, load_dataset, read_metadata
from autotag.data.prepare import open_dataset
from tests.conftest import tiny_config

APP = str(Path(__file__).parents[2] / "app.py")
ROWS = "path,tags\r\naudio/00.wav,caf\u00e9\r\naudio/01.wav,b\r\n"
FIELD_LIMIT = csv.field_size_limit()


def _folder(root: Path, content: bytes) -> Path:
    root.mkdir(parents=True)
    (root / "tags.csv").write_bytes(content)
    return root


# bytes of tags.csv -> what the one line says after the file's path
REFUSED = {
    "latin-1": (ROWS.encode("latin-1"), "tags.csv is not UTF-8 (byte 0xe9 at line 2): save it as UTF-8"),
    "cp1252 on line 3": (
        "path,tags\naudio/00.wav,a\naudio/01.wav,\u201cquoted\u201d\n".encode("cp1252"),
        "tags.csv is not UTF-8 (byte 0x93 at line 3): save it as UTF-8",
    ),
    "UTF-16 without BOM": (ROWS.encode("utf-16-le"), "tags.csv line 1 holds a NUL byte"),
    "NUL byte": (b"path,tags\naudio/00.wav,a\x00b\n", "tags.csv line 2 holds a NUL byte"),
    "UTF-16 BOM, odd length": (ROWS.encode("utf-16") + b"x", "tags.csv is not UTF-16 (truncated data at line 4)"),
    "200 kB field": (
        b"path,tags\naudio/00.wav," + b"a" * 200_000 + b"\n",
        f"tags.csv line 2: a field longer than {FIELD_LIMIT:,} characters",
    ),
    "quote never closed": (
        b'path,tags\naudio/00.wav,a\naudio/01.wav,"b;c\n' + b"audio/02.wav,c\n" * 20_000,
        f"tags.csv line 3: a field longer than {FIELD_LIMIT:,} characters (a quote opened and never closed?)",
    ),
}


@pytest.mark.parametrize("case", REFUSED)
def test_a_bad_tags_csv_ends_fit_with_exit_2_and_one_line(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    content, message = REFUSED[case]
    root = _folder(tmp_path / "set", content)
    runs = tmp_path / "runs"
    started = time.monotonic()
    code = main(["fit", "--data", str(root), "--runs-dir", str(runs), "--model", "tiny"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"autotag: error: {root}/") and message in err, err
    assert time.monotonic() - started < 5 and not runs.exists()  # refused before a run folder


def test_a_utf16_file_with_a_bom_is_read_like_utf8(tmp_path: Path) -> None:
    """What Excel writes as "Unicode text": unambiguous, so decoded rather than refused."""
    utf8 = load_dataset(_folder(tmp_path / "utf8", ROWS.encode("utf-8")))
    assert [c.tags for c in utf8.clips] == [("caf\u00e9",), ("b",)]
    for encoding in ("utf-16", "utf-16-be", "utf-8-sig"):
        bom = {"utf-16-be": b"\xfe\xff"}.get(encoding, b"")
        root = _folder(tmp_path / encoding, bom + ROWS.encode(encoding))
        read = load_dataset(root)
        assert [(c.id, c.tags, c.split) for c in read.clips] == [(c.id, c.tags, c.split) for c in utf8.clips]


def test_a_metadata_file_that_is_no_file_is_refused_without_waiting(tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    (folder / "tags.csv").mkdir(parents=True)
    with pytest.raises(DataFormatError, match=r"tags\.csv is a folder, not a file$"):
        load_dataset(folder)
    pipe = tmp_path / "pipe"
    pipe.mkdir()
    os.mkfifo(pipe / "tags.csv")  # nobody writes to it: a plain open would wait for ever
    started = time.monotonic()
    with pytest.raises(DataFormatError, match=r"tags\.csv is not a regular file$"):
        load_dataset(pipe, format="csv")
    assert time.monotonic() - started < 5  # an open that waited for a writer would never return


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its mode")
def test_an_unreadable_metadata_file_is_refused(tmp_path: Path) -> None:
    root = _folder(tmp_path / "set", ROWS.encode())
    (root / "tags.csv").chmod(0)
    with pytest.raises(DataFormatError, match=r"cannot read .*tags\.csv: Permission denied"):
        load_dataset(root)


def test_an_enormous_metadata_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    root = tmp_path / "set"
    root.mkdir()
    with open(root / "tags.csv", "wb") as fh:  # sparse: no disk, no time
        fh.truncate(MAX_METADATA_BYTES + 1)
    started = time.monotonic()
    with pytest.raises(DataFormatError, match=r"tags\.csv has more than 64 MB, far more than metadata"):
        load_dataset(root)
    assert time.monotonic() - started < 5  # the size decides, not a read of 64 MB


def test_an_audio_path_the_file_system_cannot_look_up_is_dropped_not_raised(tmp_path: Path) -> None:
    """A 300-character file name: every look at it raises ENAMETOOLONG, far from the reader."""
    root = _folder(tmp_path / "set", f"path,tags\n{'x' * 300}.wav,a\naudio/01.wav,b\n".encode())
    with pytest.raises(DataSetError, match="has no usable clips"):
        open_dataset(tiny_config(root))
    dataset = load_dataset(root)
    assert [c.id for c in dataset.clips] == ["audio/01.wav"]
    assert dataset.dropped == [f"{'x' * 300}.wav: audio path cannot be looked up (File name too long); refused"]


@pytest.mark.parametrize("case", ["latin-1", "200 kB field"])
def test_the_data_page_shows_the_one_line(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _folder(tmp_path / "set", REFUSED[case][0])
    monkeypatch.setenv("AUTOTAG_DEMO_DIR", str(root))  # the Data page's default folder
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("pages/data.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert [e.value for e in at.error] == [str(_refusal(root))]
    assert REFUSED[case][1] in at.error[0].value


def _refusal(root: Path) -> DataFormatError:
    with pytest.raises(DataFormatError) as info:
        load_dataset(root)
    return info.value


# --- property tests: whatever the bytes, a reader parses them or says DataFormatError

HEADERS = {
    "csv": ["", "path,tags\n", "path,tags,split\r\n", "\ufeffpath,tags\n"],
    "mtat": ["", '"clip_id"\t"guitar"\t"mp3_path"\r\n', "clip_id\tmp3_path\n"],
    "jamendo": ["", "TRACK_ID\tARTIST_ID\tALBUM_ID\tPATH\tDURATION\tTAGS\n"],
}
#: Pieces of real fields and of trouble: quotes, separators and line ends inside a field, NUL,
#: non-ASCII, `..`, absolute paths, a 300-character name, the folders MTAT and Jamendo paths start with.
TOKENS = ['"', ",", "\t", "\r", "\n", ";", "\x00", "\u00e9", "\u20ac", " ", "a", "b", "0", "1", "train", "valid"]
TOKENS += ["holdout", "audio/", "../", "/", "c/", "07/", ".mp3", ".wav", "x" * 300, "genre---rock"]
ENCODINGS = ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "latin-1", "cp1252"]


@st.composite
def metadata(draw: st.DrawFn, fmt: str) -> bytes:
    """Arbitrary bytes, or rows of fields that look like the format's file, in one of several encodings."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=2000))
    field = st.lists(st.sampled_from(TOKENS), max_size=5).map("".join)
    rows = draw(st.lists(st.lists(field, min_size=1, max_size=7), max_size=12))
    sep, end = ("," if fmt == "csv" else "\t"), draw(st.sampled_from(["\n", "\r\n", "\r"]))
    text = draw(st.sampled_from(HEADERS[fmt])) + "".join(sep.join(row) + end for row in rows)
    return text.encode(draw(st.sampled_from(ENCODINGS)), errors="replace")


def _layout(root: Path, fmt: str, content: bytes) -> None:
    """The file each reader reads, holding `content` (Jamendo: the train split; the others empty)."""
    if fmt == "csv":
        (root / "tags.csv").write_bytes(content)
    elif fmt == "mtat":
        (root / "annotations_final.csv").write_bytes(content)
    else:
        split = root / "data" / "splits" / "split-0"
        split.mkdir(parents=True)
        header = HEADERS["jamendo"][1].encode()
        for name in ("train", "validation", "test"):
            (split / f"autotagging_top50tags-{name}.tsv").write_bytes(content if name == "train" else header)


@pytest.mark.parametrize("fmt", ["csv", "mtat", "jamendo"])
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_metadata_is_parsed_or_refused_as_bad_data_quickly(fmt: str, data: st.DataObject) -> None:
    content = data.draw(metadata(fmt))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _layout(root, fmt, content)
        started = time.monotonic()
        try:
            open_dataset(tiny_config(root, format=fmt))  # read and checked, as the Data page and fit do
        except (DataFormatError, DataSetError) as exc:
            assert "\n" not in str(exc), str(exc)
        assert time.monotonic() - started < 10  # generous: the machine may be busy; a hang is what this catches


@settings(max_examples=200, deadline=None)
@given(content=st.binary(max_size=4000))
def test_read_metadata_gives_text_or_one_line(content: bytes) -> None:
    with tempfile.NamedTemporaryFile() as fh:
        fh.write(content)
        fh.flush()
        try:
            text = read_metadata(Path(fh.name))
        except DataFormatError as exc:
            assert "\n" not in str(exc)
        else:
            assert "\0" not in text
