"""Hostile event files: a damaged or huge file must not stall the Runs page's shared reader.

The break (issue 23): a sparse 200 MB event file (0 bytes on disk) took minutes of CPU in
one refresh, holding the lock that every viewer of the run waits on, with the whole tail
in memory and the next record searched for byte by byte.
"""

from __future__ import annotations

import functools
import os
import tempfile
import time
import tracemalloc
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch.utils.tensorboard import SummaryWriter

from autotag.runs.curves import CurveReader

HOLE = 200 << 20


def _records(folder: Path, steps: range, tag: str = "loss") -> bytes:
    writer = SummaryWriter(str(folder))
    for step in steps:
        writer.add_scalar(tag, float(step), step)
    writer.close()
    return next(folder.glob("events.out.tfevents.*")).read_bytes()


def test_a_sparse_200_mb_hole_is_read_through_in_bounded_refreshes(tmp_path: Path) -> None:
    before = _records(tmp_path / "a", range(50), "before")
    after = _records(tmp_path / "b", range(50), "after")
    (tmp_path / "run").mkdir()
    event_file = tmp_path / "run" / "events.out.tfevents.1.host"
    with event_file.open("wb") as fh:
        fh.write(before)
        os.truncate(fh.fileno(), len(before) + HOLE)  # a hole: no bytes on disk, zeros when read
        fh.seek(0, os.SEEK_END)
        fh.write(after)
    reader = CurveReader(tmp_path / "run")
    cpu, peaks, refreshes = [], [], 0
    tracemalloc.start()
    try:
        # One piece per refresh at least, so the loop ends; it is never near this many.
        while len(reader.get("after").steps) < 50 and refreshes < HOLE // (64 << 10) + 10:
            tracemalloc.reset_peak()
            start = time.thread_time()
            reader.refresh()
            cpu.append(time.thread_time() - start)
            peaks.append(tracemalloc.get_traced_memory()[1])
            refreshes += 1
    finally:
        tracemalloc.stop()
    assert max(cpu) < 2.0, f"one refresh took {max(cpu):.1f} s of CPU"
    assert max(peaks) < 16 << 20, f"one refresh held {max(peaks) >> 20} MiB"
    assert reader.get("before").steps == reader.get("after").steps == list(range(50))
    assert reader.problems == [f"{event_file.name}: damaged record header at byte {len(before)}; skipped {HOLE} bytes"]
    assert reader.caught_up and reader.pending_bytes() == 0


def _read_growing(data: bytes, cuts: list[int], piece: int) -> tuple[list[int], list[int]]:
    """Point counts after each refresh while `data` is written in the pieces `cuts` makes,
    and the steps read in the end."""
    with tempfile.TemporaryDirectory() as tmp:
        event_file = Path(tmp, "events.out.tfevents.1.host")
        reader = CurveReader(tmp, piece_bytes=piece, budget_s=0)
        counts = []
        for cut in [*sorted(cuts), len(data)]:
            event_file.write_bytes(data[:cut])
            reader.refresh()
            counts.append(reader.points)
        while not reader.caught_up:
            reader.refresh()
            counts.append(reader.points)
        return counts, reader.get("loss").steps


_PIECES = st.sampled_from([16, 64, 4096])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=3000), st.lists(st.integers(0, 3000), max_size=5), _PIECES)
def test_arbitrary_bytes_never_raise(data: bytes, cuts: list[int], piece: int) -> None:
    counts, _ = _read_growing(data, [c for c in cuts if c <= len(data)], piece)
    assert counts == sorted(counts)


@functools.cache
def _valid() -> bytes:
    """30 scalar records, written once per session."""
    with tempfile.TemporaryDirectory() as tmp:
        return _records(Path(tmp), range(30))


@st.composite
def _corrupted(draw: st.DrawFn) -> tuple[bytes, int]:
    """Valid records with bytes inserted, overwritten or cut out at several places; and the
    first damaged offset."""
    data = bytearray(_valid())
    first = len(data)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        junk = draw(st.binary(min_size=1, max_size=300))
        kind = draw(st.sampled_from(["insert", "overwrite", "cut"]))
        if kind == "insert":
            data[at:at] = junk
        elif kind == "overwrite":
            data[at : at + len(junk)] = junk
        else:
            del data[at : at + len(junk)]
        first = min(first, at)
    return bytes(data), first


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_corrupted(), st.lists(st.integers(0, 3000), max_size=5), _PIECES)
def test_valid_records_with_corruption_spliced_in_never_raise_and_counts_only_grow(
    corrupted: tuple[bytes, int], cuts: list[int], piece: int
) -> None:
    data, first_damage = corrupted
    counts, steps = _read_growing(data, [c for c in cuts if c <= len(data)], piece)
    assert counts == sorted(counts)
    assert set(_read_whole(_valid()[:first_damage])) <= set(steps)  # every record before the damage is read
    assert steps == _read_whole(data)  # read growing, piece by piece: nothing lost, nothing made up


def _read_whole(data: bytes) -> list[int]:
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "events.out.tfevents.1.host").write_bytes(data)
        reader = CurveReader(tmp)
        reader.refresh()
        return reader.get("loss").steps
