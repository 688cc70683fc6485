"""The files processes share: whole or not at all, bounded when read, typed, locked."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from autotag.store.files import (
    TMP_MARK,
    Count,
    JsonFileError,
    file_lock,
    load_json,
    text_head,
    typed_fields,
    write_json_atomic,
)


def test_a_json_file_is_read_within_bounds_or_refused_by_name(tmp_path: Path) -> None:
    file = tmp_path / "metrics.json"
    with pytest.raises(FileNotFoundError):
        load_json(file)
    file.write_text('{"test_roc_auc": 0.9}')
    assert load_json(file) == {"test_roc_auc": 0.9}
    file.write_text(json.dumps({"pad": "x" * 2048}))
    with pytest.raises(JsonFileError, match="metrics.json is larger than 0 MB"):
        load_json(file, max_bytes=1024)
    for damaged in ("[" * 200_000, "\udcff".encode("utf-8", "surrogatepass").decode("latin-1"), "{"):
        file.write_text(damaged, encoding="latin-1")
        with pytest.raises(JsonFileError, match="metrics.json is not JSON"):
            load_json(file)


class _Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("cannot be written")


def test_a_write_is_whole_or_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    file = tmp_path / "status.json"
    write_json_atomic(file, {"loss": float("nan"), "steps": [1.0, float("inf")]})
    assert json.loads(file.read_text()) == {"loss": None, "steps": [1.0, None]}  # JSON has no NaN
    with pytest.raises(RuntimeError, match="cannot be written"):
        write_json_atomic(file, {"bad": _Unprintable()})
    assert json.loads(file.read_text()) == {"loss": None, "steps": [1.0, None]}
    assert not [p for p in tmp_path.iterdir() if TMP_MARK in p.name]


def test_the_lock_lets_one_holder_in_at_a_time(tmp_path: Path) -> None:
    lock, order = tmp_path / ".status.lock", []

    def second() -> None:
        with file_lock(lock):
            order.append("second")

    with file_lock(lock):
        other = threading.Thread(target=second)
        other.start()
        time.sleep(0.2)  # the other holder waits while this one holds the lock
        order.append("first")
    other.join(5)
    assert order == ["first", "second"]


@dataclass
class _Record:
    state: str = "unknown"  # typed_fields leaves a record's state to its reader
    epoch: Count | None = None
    note: str | None = None


def test_each_field_is_checked_against_its_type_and_a_bad_one_left_out_with_why() -> None:
    values, problems = typed_fields(_Record, {"epoch": 3, "note": "ok", "state": 5, "extra": 1})
    assert values == {"epoch": 3, "note": "ok"} and problems == []
    values, problems = typed_fields(_Record, {"epoch": -1, "note": ["a"]})
    assert values == {} and [p.split(":")[0] for p in problems] == ["epoch", "note"]
    assert typed_fields(_Record, {"epoch": True})[1], "JSON's true is no count autotag wrote"


def test_a_text_file_is_shown_by_its_head_whatever_its_bytes(tmp_path: Path) -> None:
    file = tmp_path / "config.yaml"
    file.write_bytes(b"model: tiny\n\xff\xfe" + b"x" * 100)
    assert text_head(file, limit=20).startswith("model: tiny\n\ufffd\ufffd") and len(text_head(file, limit=20)) == 20
    assert text_head(tmp_path / "missing.yaml").startswith("(missing.yaml cannot be read:")
