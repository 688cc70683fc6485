import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from autotag.data.formats import (
    Clip,
    DataFormatError,
    assign_splits,
    detect_format,
    load_dataset,
    multi_hot,
    read_metadata,
    top_labels,
)
from autotag.data.prepare import open_dataset
from tests.conftest import tiny_config, tone, write_csv_dataset

MTAT_TAGS = ["no voice", "singer", "guitar", "classical", "slow", "techno"]


def write_mtat(root: Path, n: int = 32, audio_sub: str = "") -> Path:
    """annotations_final.csv exactly as published: TAB separated, every field quoted, CRLF."""
    root.mkdir(parents=True)
    lines = ["\t".join(f'"{h}"' for h in ["clip_id", *MTAT_TAGS, "mp3_path"])]
    for i in range(n):
        folder = "0123456789abcdef"[i % 16]
        rel = f"{folder}/artist-album-{i:02d}-song-0-29.mp3"
        flags = ["1" if (i + j) % 3 == 0 else "0" for j in range(len(MTAT_TAGS))]
        flags[2] = "1" if i % 2 else "0"  # guitar is the most frequent
        if i == 5:
            flags = ["0"] * len(MTAT_TAGS)  # a clip without tags, as MTAT has many
        lines.append("\t".join(f'"{v}"' for v in [str(i), *flags, rel]))
        path = root / audio_sub / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, tone(0.5), 16000, format="MP3")
    (root / "annotations_final.csv").write_bytes(("\r\n".join(lines) + "\r\n").encode())
    return root


def write_jamendo(root: Path, subset: str = "top50tags") -> Path:
    """The mtg-jamendo-dataset repo layout: data/*.tsv, data/splits/split-0/, audio in NN/ folders."""
    split_dir = root / "data" / "splits" / "split-0"
    split_dir.mkdir(parents=True)
    header = "TRACK_ID\tARTIST_ID\tALBUM_ID\tPATH\tDURATION\tTAGS"
    tags = ["genre---rock", "instrument---piano", "mood/theme---happy", "genre---pop"]
    rows = {s: [] for s in ("train", "validation", "test")}
    for i in range(24):
        split = "train" if i < 16 else "validation" if i < 20 else "test"
        rel = f"{i:02d}/{1000 + i}.mp3"
        mine = [tags[i % 4], tags[(i + 1) % 4]]
        rows[split].append("\t".join([f"track_{i:07d}", "artist_000001", "album_000001", rel, "30.0", *mine]))
        path = root / "audio" / rel
        if i == 3:  # only the published low-quality file is present for this one
            path = path.with_suffix(".low.mp3")
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, tone(0.5), 16000, format="MP3")
    for split, lines in rows.items():
        (split_dir / f"autotagging_{subset}-{split}.tsv").write_text("\n".join([header, *lines]) + "\n")
    (root / "data" / f"autotagging_{subset}.tsv").write_text(header + "\n")
    return root


def test_csv_with_and_without_split_column(tmp_path: Path, small_csv_dataset: Path) -> None:
    ds = load_dataset(small_csv_dataset)
    assert ds.format == "csv" and ds.labels == ["a", "b", "c"]
    assert [len(ds.split(s)) for s in ("train", "valid", "test")] == [8, 2, 2]
    assert ds.clips[0].tags == ("a", "b") and ds.clips[0].path.is_file()

    rows = [(f"x/{i}.wav", "a;b" if i % 2 else "b", None) for i in range(20)]
    ds2 = load_dataset(write_csv_dataset(tmp_path / "nosplit", rows))
    assert [len(ds2.split(s)) for s in ("train", "valid", "test")] == [16, 2, 2]
    assert load_dataset(tmp_path / "nosplit").clips == ds2.clips  # deterministic


def test_hash_split_ignores_row_order() -> None:
    keys = [f"clip{i}" for i in range(50)]
    assert assign_splits(keys) == assign_splits(list(reversed(keys)))


def test_csv_bad_columns_and_unknown_split(tmp_path: Path) -> None:
    root = tmp_path / "bad"
    root.mkdir()
    (root / "tags.csv").write_text("file,labels\nx.wav,a\n")
    with pytest.raises(DataFormatError, match="must have columns path,tags"):
        load_dataset(root)
    ds = load_dataset(write_csv_dataset(tmp_path / "s", [("a.wav", "x", "train"), ("b.wav", "y", "holdout")]))
    assert len(ds.clips) == 1 and "unknown split 'holdout'" in ds.dropped[0]


def test_mtat_published_layout(tmp_path: Path) -> None:
    root = write_mtat(tmp_path / "mtat", audio_sub="mp3")
    assert detect_format(root) == "mtat"
    ds = load_dataset(root, top_n=3)
    assert len(ds.labels) == 3 and ds.labels[0] == "guitar"  # most frequent first
    by_id = {c.id: c for c in ds.clips}
    assert by_id["0"].split == "train" and by_id["12"].split == "valid" and by_id["13"].split == "test"
    assert by_id["11"].split == "train"  # folder b
    assert all(c.path.is_file() for c in ds.clips)  # audio found under mp3/
    assert by_id["5"].tags == ()


def test_jamendo_published_layout(tmp_path: Path) -> None:
    root = write_jamendo(tmp_path / "jam")
    assert detect_format(root) == "jamendo"
    ds = load_dataset(root, top_n=50)
    assert [len(ds.split(s)) for s in ("train", "valid", "test")] == [16, 4, 4]
    assert set(ds.labels) == {"genre---rock", "instrument---piano", "mood/theme---happy", "genre---pop"}
    assert all(c.path.is_file() for c in ds.clips)
    assert {c.id: c for c in ds.clips}["track_0000003"].path.name == "1003.low.mp3"
    with pytest.raises(DataFormatError, match="split files not found"):
        load_dataset(root, jamendo_subset="genre")


def test_unknown_and_missing_folders(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataFormatError, match="not a known data set"):
        load_dataset(tmp_path / "empty")
    with pytest.raises(DataFormatError, match="does not exist"):
        load_dataset(tmp_path / "nowhere")
    with pytest.raises(DataFormatError, match="has no annotations_final.csv"):
        load_dataset(tmp_path / "empty", format="mtat")


def test_top_labels_is_stable() -> None:
    assert top_labels([("b", "a"), ("a",), ("c",), ("b",)], 2) == ["a", "b"]


def test_multi_hot_follows_label_order_and_ignores_other_tags() -> None:
    clips = [Clip("1", Path("x"), ("b", "c"), "train"), Clip("2", Path("y"), ("a", "z"), "train")]
    targets = multi_hot(clips, ["a", "b", "c"])
    assert targets.dtype == np.float32 and targets.tolist() == [[0, 1, 1], [1, 0, 0]]


def test_dataset_targets_equal_a_per_clip_rebuild(small_csv_dataset: Path) -> None:
    """What the Data page built itself for its co-occurrence chart before asking the data set."""
    _, ds = open_dataset(tiny_config(small_csv_dataset))
    col = {t: j for j, t in enumerate(ds.labels)}
    rebuilt = np.zeros((len(ds.clips), len(ds.labels)))
    for i, clip in enumerate(ds.clips):
        rebuilt[i, [col[t] for t in clip.tags]] = 1
    assert ds.targets().shape == (12, 3)
    np.testing.assert_array_equal(ds.targets(), rebuilt)


def test_every_reader_refuses_a_file_that_is_not_utf8_naming_file_and_line(tmp_path: Path) -> None:
    mtat = write_mtat(tmp_path / "mtat")
    meta = mtat / "annotations_final.csv"
    meta.write_bytes(meta.read_bytes().replace(b'"singer"', b'"s\xe4nger"'))  # Latin-1 in the header
    with pytest.raises(DataFormatError, match=r"annotations_final\.csv is not UTF-8 \(byte 0xe4 at line 1\)"):
        load_dataset(mtat)
    jam = write_jamendo(tmp_path / "jam")
    train = jam / "data" / "splits" / "split-0" / "autotagging_top50tags-train.tsv"
    train.write_bytes(train.read_bytes() + "track_0000099\ta\tb\t99/99.mp3\t30.0\tgenre---t\u00e9\n".encode("cp1252"))
    with pytest.raises(DataFormatError, match=r"-train\.tsv is not UTF-8 \(byte 0xe9 at line 18\): save it as UTF-8"):
        load_dataset(jam)


def test_an_excel_utf16_file_reads_as_the_published_one(tmp_path: Path) -> None:
    """Excel's "Unicode text" is UTF-16 with a BOM, TAB separated: the MTAT layout itself."""
    root = write_mtat(tmp_path / "mtat")
    published = load_dataset(root, top_n=3)
    meta = root / "annotations_final.csv"
    text = meta.read_text(encoding="utf-8")
    for bom, encoding in ((b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be")):
        meta.write_bytes(bom + text.encode(encoding))
        assert load_dataset(root, top_n=3).clips == published.clips


def test_read_metadata_says_what_is_wrong_in_one_line(tmp_path: Path) -> None:
    file = tmp_path / "tags.csv"
    file.write_bytes(b"\xef\xbb\xbfpath,tags\n")
    assert read_metadata(file) == "path,tags\n"  # UTF-8's BOM is dropped
    for content, message in [
        (b"path,tags\r\nx.wav,a\r\nx\x00.wav,b\r\n", "line 3 holds a NUL byte"),
        (b"path,tags\n\x81", "is not UTF-8 (byte 0x81 at line 2)"),
        (b"\xff\xfe" + "p\n\n".encode("utf-16-le") + b"\x00\xdc", "is not UTF-16 (illegal encoding at line 3)"),
    ]:
        file.write_bytes(content)
        with pytest.raises(DataFormatError, match=re.escape(f"{file} {message}")):
            read_metadata(file)


def test_a_quoted_field_over_several_lines_is_refused_where_it_starts(tmp_path: Path) -> None:
    root = tmp_path / "set"
    root.mkdir()
    (root / "tags.csv").write_text('path,tags\na.wav,"x\nb.wav,y\nc.wav,z"\nd.wav,w\n')
    with pytest.raises(DataFormatError, match=r"tags\.csv line 2: a quoted field runs on to line 4"):
        load_dataset(root)


def test_a_jamendo_path_too_long_to_look_up_is_dropped(tmp_path: Path) -> None:
    root = write_jamendo(tmp_path / "jam")
    train = root / "data" / "splits" / "split-0" / "autotagging_top50tags-train.tsv"
    long_name = f"{'9' * 300}.mp3"
    train.write_text(train.read_text() + f"track_0000099\ta\tb\t00/{long_name}\t30.0\tgenre---rock\n")
    ds = load_dataset(root)
    assert "track_0000099" not in {c.id for c in ds.clips} and len(ds.clips) == 24
    assert ds.dropped == ["track_0000099: audio path cannot be looked up (File name too long); refused"]
