"""The event-file reader under growth, truncation and corruption: it never raises, counts only grow."""

from __future__ import annotations

import random
import shutil
import struct
from pathlib import Path

import pytest
from torch.utils.tensorboard import SummaryWriter

from autotag.runs.curves import MAX_PROBLEMS, CurveReader, _next_header, curves_csv, downsample, masked_crc32c, smooth


def _write_run(folder: Path, steps: range, tags: tuple[str, ...] = ("train_loss", "val_loss")) -> Path:
    writer = SummaryWriter(str(folder))
    for step in steps:
        for i, tag in enumerate(tags):
            writer.add_scalar(tag, 1.0 / (step + 1) + i, step)
    writer.close()
    return next(folder.glob("events.out.tfevents.*"))


def _count(reader: CurveReader) -> int:
    return sum(len(s.steps) for s in reader.series.values())


def _read_through(reader: CurveReader) -> list[int]:
    """Refreshes until the reader has caught up; the point count after each refresh."""
    counts = []
    while True:
        reader.refresh()
        counts.append(reader.points)
        if reader.caught_up:
            return counts


def test_refresh_reads_only_what_was_appended(tmp_path: Path) -> None:
    src = _write_run(tmp_path / "src", range(100))
    data = src.read_bytes()
    (tmp_path / "live").mkdir()
    live = tmp_path / "live" / src.name
    reader = CurveReader(tmp_path / "live")
    counts = []
    for cut in range(0, len(data) + 1, 97):  # appended in odd-sized pieces, records split anywhere
        live.write_bytes(data[:cut])
        reader.refresh()
        counts.append(_count(reader))
    live.write_bytes(data)
    reader.refresh()
    assert counts == sorted(counts), "a refresh lost points"
    assert _count(reader) == 200 and reader.get("val_loss").steps == list(range(100))
    assert reader.refresh() == 0 and not reader.problems and reader.pending_bytes() == 0


@pytest.mark.parametrize("seed", range(20))
def test_truncated_and_flipped_files_never_raise(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    src = _write_run(tmp_path / "src", range(60))
    data = bytearray(src.read_bytes())
    (tmp_path / "t").mkdir()
    cut = rng.randrange(len(data))
    (tmp_path / "t" / src.name).write_bytes(data[:cut])
    truncated = CurveReader(tmp_path / "t")
    truncated.refresh()
    assert _count(truncated) <= 120 and not truncated.problems

    flip_at = rng.randrange(60, len(data))  # past the file-version record
    data[flip_at] ^= 0xFF
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / src.name).write_bytes(bytes(data))
    flipped = CurveReader(tmp_path / "f")
    flipped.refresh()
    assert flipped.problems, "a damaged record went unnoticed"
    assert 115 <= _count(flipped) < 120  # one record lost, or a few when a header broke


def test_a_shrunk_file_keeps_its_points_and_is_flagged(tmp_path: Path) -> None:
    src = _write_run(tmp_path / "src", range(30))
    reader = CurveReader(tmp_path / "src")
    reader.refresh()
    src.write_bytes(src.read_bytes()[:100])
    reader.refresh()
    assert _count(reader) == 60 and "shrank" in reader.problems[0]


def test_resumed_run_plots_every_step_once(tmp_path: Path) -> None:
    first = _write_run(tmp_path / "a", range(0, 50))
    second = _write_run(tmp_path / "b", range(30, 80))
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(first, run / "events.out.tfevents.1000.host.1.0")
    shutil.copy(second, run / "events.out.tfevents.2000.host.2.0")  # written after the resume
    reader = CurveReader(run)
    reader.refresh()
    assert reader.get("train_loss").steps == list(range(80))


def test_smoothing_and_downsampling() -> None:
    assert smooth([1.0, 1.0, 1.0], 0.9) == pytest.approx([1.0, 1.0, 1.0])  # debiased: no ramp from 0
    assert smooth([1.0, 3.0], 0.0) == [1.0, 3.0]
    steps, values = downsample(list(range(5000)), [float(v) for v in range(5000)], 1000)
    assert len(steps) <= 1000 and steps[0] == 0 and steps[-1] == 4999 and values[-1] == 4999.0


def _frame(payload: bytes) -> bytes:
    """One TFRecord frame around `payload`, as the writer frames it."""
    header = struct.pack("<Q", len(payload))
    return header + struct.pack("<I", masked_crc32c(header)) + payload + struct.pack("<I", masked_crc32c(payload))


@pytest.mark.parametrize(
    "filler",
    [
        bytes(300_000),  # a hole: zeros are never a header, and are passed over in blocks
        random.Random(1).randbytes(300_000),
        b"\xff" * 300_000,
        (b"\x01" + bytes(7)) * 40_000,  # a plausible length every 8 bytes: each one's CRC is checked
    ],
    ids=["zeros", "random", "ones", "lengths"],
)
def test_resync_finds_the_next_frame_after_garbage_and_after_zeros(tmp_path: Path, filler: bytes) -> None:
    data = _write_run(tmp_path / "src", range(50)).read_bytes()
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "events.out.tfevents.1.host").write_bytes(data + filler + data)
    reader = CurveReader(tmp_path / "run")
    _read_through(reader)
    assert reader.get("val_loss").steps == list(range(50))  # the second copy rewrote the first's steps
    assert reader.points == 200
    assert reader.problems == [
        f"events.out.tfevents.1.host: damaged record header at byte {len(data)}; skipped {len(filler)} bytes"
    ]


def test_the_vectorised_header_check_agrees_with_crc32c() -> None:
    rng = random.Random(3)
    for _ in range(300):
        garbage = rng.randbytes(rng.randrange(0, 200))
        header = struct.pack("<Q", rng.choice([1, 7, 255, 65536, rng.randrange(1, 64 << 20), 64 << 20]))
        frame = header + struct.pack("<I", masked_crc32c(header))
        assert _next_header(garbage + frame, 0) in (len(garbage), *range(len(garbage)))  # a chance hit may come first
        assert _next_header(garbage + frame, len(garbage)) == len(garbage)
        broken = bytearray(frame)
        broken[rng.randrange(12)] ^= 1 << rng.randrange(8)
        assert _next_header(bytes(broken), 0) is None
    too_long = struct.pack("<Q", (64 << 20) + 1)
    assert _next_header(too_long + struct.pack("<I", masked_crc32c(too_long)), 0) is None


def test_a_refresh_reads_one_bounded_piece_and_the_next_goes_on(tmp_path: Path) -> None:
    src = _write_run(tmp_path / "src", range(2000))
    size = src.stat().st_size
    reader = CurveReader(tmp_path / "src", piece_bytes=4096, budget_s=0)  # one piece per file per refresh
    counts, offsets = [], [0]
    while not counts or not reader.caught_up:
        assert reader.pending_bytes() == 0  # unread is not torn
        reader.refresh()
        counts.append(reader.points)
        offsets.append(reader._tails[src].offset)
    assert all(0 < b - a <= 4096 for a, b in zip(offsets, offsets[1:]))
    assert len(counts) >= size / 4096  # a piece ends in a split record, read again by the next
    assert counts == sorted(counts) and reader.points == 4000 and reader.get("val_loss").steps == list(range(2000))
    assert not reader.problems and reader.pending_bytes() == 0


@pytest.mark.parametrize("piece", [16, 37, 100, 4096])
def test_nothing_is_lost_across_piecewise_reads(tmp_path: Path, piece: int) -> None:
    """Small pieces split headers, records and a damaged stretch anywhere; a record longer
    than a piece (a text summary) is read whole."""
    halves = []
    for tag in ("loss", "lose"):
        writer = SummaryWriter(str(tmp_path / tag))
        writer.add_text("notes", "x" * 5000, 0)
        for step in range(40):
            writer.add_scalar(tag, float(step), step)
        writer.close()
        halves.append(next((tmp_path / tag).glob("events.out.tfevents.*")).read_bytes())
    data = halves[0]
    (tmp_path / "run").mkdir()
    live = tmp_path / "run" / "events.out.tfevents.1.host"
    reader = CurveReader(tmp_path / "run", piece_bytes=piece, budget_s=0)
    whole = data + random.Random(piece).randbytes(3000) + halves[1]
    counts = []
    for cut in range(0, len(whole) + 1, 997):
        live.write_bytes(whole[:cut])
        reader.refresh()
        counts.append(reader.points)
    live.write_bytes(whole)
    counts += _read_through(reader)
    assert counts == sorted(counts)
    assert reader.get("loss").steps == reader.get("lose").steps == list(range(40))
    assert reader.problems == [f"{live.name}: damaged record header at byte {len(data)}; skipped 3000 bytes"]
    assert reader.pending_bytes() == 0


def test_a_flood_of_broken_records_is_a_few_lines(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    good = _frame(b"\x09" + bytes(8))  # an Event holding only a wall time
    broken = good[:-1] + bytes([good[-1] ^ 1])  # its payload checksum fails
    (tmp_path / "run" / "events.out.tfevents.1.host").write_bytes(broken * 5000)
    reader = CurveReader(tmp_path / "run")
    _read_through(reader)
    assert len(reader.problems) == MAX_PROBLEMS + 1
    assert reader.problems[-1].endswith(f"{5000 - MAX_PROBLEMS} more problems, not listed")


def test_a_file_that_ends_in_damage_is_one_line_not_a_torn_record(tmp_path: Path) -> None:
    data = _write_run(tmp_path / "src", range(10)).read_bytes()
    (tmp_path / "run").mkdir()
    event_file = tmp_path / "run" / "events.out.tfevents.1.host"
    event_file.write_bytes(data + random.Random(5).randbytes(200_000))
    reader = CurveReader(tmp_path / "run", budget_s=0)
    _read_through(reader)
    assert reader.points == 20 and reader.pending_bytes() == 0
    assert reader.problems == [
        f"{event_file.name}: damaged record header at byte {len(data)}; no valid record after it yet"
    ]
    with event_file.open("ab") as fh:  # the writer goes on after the damage
        fh.write(_write_run(tmp_path / "more", range(10, 15)).read_bytes())
    _read_through(reader)
    assert reader.get("train_loss").steps == list(range(15))
    assert reader.problems == [f"{event_file.name}: damaged record header at byte {len(data)}; skipped 200000 bytes"]


def test_the_curves_download_holds_every_point_of_every_shown_run(tmp_path: Path) -> None:
    _write_run(tmp_path / "a", range(3))
    _write_run(tmp_path / "b", range(2), tags=("train_loss",))
    readers = {name: CurveReader(tmp_path / name) for name in ("a", "b")}
    for reader in readers.values():
        reader.refresh()
    lines = curves_csv(readers).splitlines()
    assert lines[0] == "run,tag,step,epoch,seconds,value" and len(lines) == 1 + 3 * 2 + 2
    first, last = lines[1].split(","), lines[-1].split(",")
    assert first[:3] == ["a", "train_loss", "0"] and first[-1] == "1.0" and float(first[4]) == 0.0
    assert last[:3] == ["b", "train_loss", "1"] and last[-1] == "0.5" and float(last[4]) >= 0.0


def _write_epochs(folder: Path, steps_per_epoch: int, epochs: int, running_steps: int = 0) -> None:
    """Scalars as Lightning logs them: train_loss and the epoch every 10 steps, val_loss and
    the epoch at the last step of each epoch; then `running_steps` of an epoch not yet validated."""
    writer = SummaryWriter(str(folder))
    last = steps_per_epoch * epochs + running_steps
    for step in range(9, last, 10):
        writer.add_scalar("train_loss", 1.0, step)
        writer.add_scalar("epoch", float(step // steps_per_epoch), step)
    for epoch in range(epochs):
        end = (epoch + 1) * steps_per_epoch - 1
        writer.add_scalar("val_loss", 0.5, end)
        writer.add_scalar("epoch", float(epoch), end)
    writer.close()


def test_steps_read_as_epochs_trained_and_validation_points_sit_on_whole_epochs(tmp_path: Path) -> None:
    _write_epochs(tmp_path / "tb", steps_per_epoch=60, epochs=3, running_steps=30)
    reader = CurveReader(tmp_path / "tb")
    reader.refresh()
    assert reader.epochs_at(reader.get("val_loss").steps) == [1.0, 2.0, 3.0]
    assert reader.epochs_at([29, 89]) == pytest.approx([0.5, 1.5])
    assert reader.epochs_at([209]) == pytest.approx([3.5])  # the running epoch: the last one's length
    assert reader.epochs_at([10_000]) == [4.0]  # never past the running epoch's end
    assert reader.started() is not None and reader.ended() >= reader.started()


def test_before_the_first_validation_a_point_sits_at_its_epochs_start(tmp_path: Path) -> None:
    _write_epochs(tmp_path / "tb", steps_per_epoch=60, epochs=0, running_steps=40)
    reader = CurveReader(tmp_path / "tb")
    reader.refresh()
    assert reader.epochs_at(reader.get("train_loss").steps) == [0.0] * 4
    assert CurveReader(tmp_path / "none").epochs_at([1, 2]) == [0.0, 0.0]
