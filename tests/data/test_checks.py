from pathlib import Path

import pytest

from autotag.data.checks import DataSetError, check_dataset, require_trainable
from autotag.data.formats import load_dataset
from tests.conftest import write_csv_dataset


def test_report_lists_every_problem_by_clip(tmp_path: Path, small_csv_dataset: Path) -> None:
    (small_csv_dataset / "audio" / "03.wav").unlink()
    (small_csv_dataset / "audio" / "04.wav").write_bytes(b"")
    csv = small_csv_dataset / "tags.csv"
    csv.write_text(csv.read_text() + "audio/00.wav,a,train\naudio/01.wav,,train\naudio/09.wav,zzz,valid\n")
    report, usable = check_dataset(load_dataset(small_csv_dataset), undecodable=frozenset({"audio/05.wav"}))
    assert report.missing_files == ["audio/03.wav"]
    assert report.undecodable == ["audio/04.wav", "audio/05.wav"]
    assert report.duplicate_ids == ["audio/00.wav", "audio/01.wav", "audio/09.wav"]
    assert report.unlearnable_tags == ["zzz"]
    assert report.skipped == 6
    assert {c.id for c in usable.clips}.isdisjoint({"audio/03.wav", "audio/04.wav", "audio/05.wav"})
    text = "\n".join(report.summary_lines())
    assert "skipped 1 missing audio files: audio/03.wav" in text
    assert report.split_sizes["train"] == 5


def test_tags_without_positives_in_a_split_are_reported(small_csv_dataset: Path) -> None:
    csv = small_csv_dataset / "tags.csv"
    csv.write_text(csv.read_text().replace("audio/10.wav,a;c,test", "audio/10.wav,b,test"))
    report, _ = check_dataset(load_dataset(small_csv_dataset))
    assert report.tags_without_positives == {"train": [], "valid": [], "test": ["a", "c"]}
    assert report.tag_counts["train"] == {"a": 4, "b": 4, "c": 5}
    assert "2 tags have no positive in test: a, c" in report.summary_lines()


def test_untrainable_sets_get_one_clear_error(tmp_path: Path) -> None:
    one_tag = write_csv_dataset(
        tmp_path / "one", [(f"{i}.wav", "x", s) for i, s in enumerate(["train"] * 3 + ["valid"])]
    )
    report, usable = check_dataset(load_dataset(one_tag))
    with pytest.raises(DataSetError, match="needs at least 2"):
        require_trainable(report, usable)
    empty = write_csv_dataset(tmp_path / "empty", [])
    report, usable = check_dataset(load_dataset(empty))
    with pytest.raises(DataSetError, match="no usable clips"):
        require_trainable(report, usable)
    no_valid = write_csv_dataset(tmp_path / "nv", [("a.wav", "x;y", "train"), ("b.wav", "y", "train")])
    report, usable = check_dataset(load_dataset(no_valid))
    with pytest.raises(DataSetError, match="no usable clips in the valid split"):
        require_trainable(report, usable)
