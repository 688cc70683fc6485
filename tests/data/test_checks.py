from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autotag.data.checks import DataSetError, ValidationReport, check_dataset, require_trainable
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


def test_long_tag_lists_say_how_many_more_there_are_and_never_hide_just_one(tmp_path: Path) -> None:
    tags = ["brass", "drums", "organ", "piano", "reed", "strings", "synth", "voice"]
    rows = [(f"{i}.wav", ";".join(tags), "train") for i in range(2)] + [("v.wav", "voice", "valid")]
    rows += [("t.wav", "synth;voice", "test")]
    lines = check_dataset(load_dataset(write_csv_dataset(tmp_path / "d", rows)))[0].summary_lines()
    assert "7 tags have no positive in valid: brass, drums, organ, piano, reed ... and 2 more" in lines
    assert "6 tags have no positive in test: brass, drums, organ, piano, reed, strings" in lines


def test_a_split_that_can_rank_no_tag_is_named_with_its_tags_up_front(tmp_path: Path) -> None:
    """12 clips split 10/1/1: its validation and test scores will be n/a, and the report says so."""
    tags = ["a;b", "b", "a;c", "c", "a", "b;c", "a;b;c", "c", "a;b", "b;c", "a;c", "b"]
    splits = ["train"] * 10 + ["valid", "test"]
    rows = [(f"{i:02d}.wav", t, s) for i, (t, s) in enumerate(zip(tags, splits))]
    report, usable = check_dataset(load_dataset(write_csv_dataset(tmp_path / "d", rows)))
    require_trainable(report, usable)  # a warning, not a refusal: training goes by val_loss
    lines = report.summary_lines()
    assert (
        "no tag can be ranked in valid (each needs a clip with it and one without; on its one clip: a, c; "
        "on none: b): its ROC-AUC and PR-AUC will be n/a; the best checkpoint is still chosen by val_loss"
    ) in lines
    assert (
        "no tag can be ranked in test (each needs a clip with it and one without; on its one clip: b; "
        "on none: a, c): its ROC-AUC and PR-AUC will be n/a"
    ) in lines


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.booleans(), min_size=3, max_size=3), min_size=1, max_size=6))
def test_the_report_warns_exactly_when_the_split_will_score_n_a(valid: list[list[bool]]) -> None:
    """The up-front line and the metric computed after each validation agree on every split."""
    import torch

    from autotag.training.metrics import tag_scores, unscored_note

    labels = ["a", "b", "c"]
    report = ValidationReport(
        split_sizes={"valid": len(valid)},
        tag_counts={"valid": {t: sum(row[j] for row in valid) for j, t in enumerate(labels)}},
    )
    targets = torch.tensor(valid, dtype=torch.int64)
    scores = tag_scores(torch.rand(targets.shape), targets, labels)
    warned = any(line.startswith("no tag can be ranked in valid") for line in report.summary_lines())
    assert warned == (unscored_note(scores, "valid") is not None)


def test_tags_a_checkpoint_could_not_carry_are_refused_before_training(tmp_path: Path) -> None:
    """A checkpoint's labels are checked on load (at most 1,000 of up to 200 characters): a data
    set whose tags break that rule would train a model whose every checkpoint is refused."""
    long_tag = "t" * 201
    rows = [(f"{i}.wav", f"{long_tag};b", s) for i, s in enumerate(["train", "train", "valid", "test"])]
    report, usable = check_dataset(load_dataset(write_csv_dataset(tmp_path / "long", rows)))
    with pytest.raises(DataSetError, match="its tags cannot be a model's .*1 to 200 characters"):
        require_trainable(report, usable)
