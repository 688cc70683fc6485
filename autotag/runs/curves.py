"""Scalar curves out of a run's TensorBoard event files, read incrementally.

One `CurveReader` per run keeps one `EventFileTail` per event file. A tail remembers its
byte offset, so a refresh reads only records appended since the last one, and a refresh
of an unchanged file is one stat. Records are TFRecord frames (length, masked CRC-32C,
payload, masked CRC-32C) holding tensorboard's `Event` protobufs.

Nothing in a broken file makes the reader raise. A record cut off at the end of the
file is waited for, since the writer may still be appending. A record whose checksum
fails is skipped and reported in `problems`, and reading resumes at the next valid
frame. So point counts only grow, and the dashboard can flag the damage instead of
silently cutting the curve. A resumed run writes a new event file that repeats the
steps after its checkpoint; those newer points replace the older ones, so every step is
plotted once.

A refresh does bounded work, since all viewers of a run wait on its one reader: it reads
pieces of `PIECE_BYTES` until `REFRESH_BUDGET_S` has passed, and the next refresh goes on
where it stopped. Damage costs little to cross: the next valid frame is searched for with
numpy, not byte by byte, and a zero-filled stretch (a sparse hole of hundreds of MB) can
never be a frame. A damaged stretch is one line in `problems`, however long it is.
"""

from __future__ import annotations

import csv
import io
import math
import re
import struct
import threading
import time
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from crc32c import crc32c
from google.protobuf.message import DecodeError
from tensorboard.compat.proto.event_pb2 import Event

EVENT_GLOB = "events.out.tfevents.*"
_STAMP = re.compile(r"events\.out\.tfevents\.(\d+)")


@dataclass
class Series:
    """One scalar over steps; `steps` ascend, and `walls` hold each point's wall-clock time
    (seconds since the epoch, as the trainer wrote it)."""

    steps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    walls: list[float] = field(default_factory=list)

    def add(self, step: int, value: float, wall: float = 0.0) -> None:
        while self.steps and self.steps[-1] >= step:  # rewritten after a resume: newest wins
            self.steps.pop()
            self.values.pop()
            self.walls.pop()
        self.steps.append(step)
        self.values.append(value)
        self.walls.append(wall)


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC-32C, in C (tensorboard's own copy is pure Python, 10x slower)."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


_HEADER = struct.Struct("<QI")
_CRC = struct.Struct("<I")
#: No scalar record is anywhere near this long; a larger length means a damaged header.
_MAX_RECORD = 64 << 20
#: Bytes read from a file at a time, and so about what one refresh holds in memory (a
#: record longer than this is read whole, up to `_MAX_RECORD`). 64 KiB is ~1,300 scalar
#: points, a few ms to decode; it stays in the CPU's cache, where pieces of 1 MiB made
#: reading and scanning damage 5-10x slower (page faults on every fresh buffer).
PIECE_BYTES = 64 << 10
#: A refresh stops reading after the piece that takes it past this many seconds, so it holds
#: its run's lock for about this plus one piece; what is left is read by the next refresh.
#: Every file still gets one piece per refresh, so none waits for another. 0.1 s keeps a
#: page that waits for the lock responsive, and still reads ~50 MiB of a sparse hole or
#: ~19,000 points per refresh: a whole run of the curves benchmark (8,000 points) in one.
REFRESH_BUDGET_S = 0.1
#: Damage lines kept per file: a file of nothing but broken records must not grow the list
#: (and the page's warning) without bound; the rest are counted in one last line.
MAX_PROBLEMS = 10


def _header_length(data: bytes, pos: int) -> int:
    """The length of the record whose frame header starts at `pos`, or 0 if none does.

    An `Event` always carries its wall time, so a record is never empty: a length of 0 is
    damage too, which lets `_next_header` pass over zero-filled stretches (a sparse hole,
    preallocated space) without checking each byte.
    """
    length, header_crc = _HEADER.unpack_from(data, pos)
    return length if 0 < length <= _MAX_RECORD and masked_crc32c(data[pos : pos + 8]) == header_crc else 0


def _crc_tables() -> tuple[int, np.ndarray]:
    """CRC-32C of 8 bytes whose last 4 are zero, as `zeros ^ T[0][b0] ^ ... ^ T[3][b3]`.

    A CRC is affine in its input bits, so each byte's share is looked up alone; this checks
    every candidate header of a piece in a few numpy passes instead of one call per byte.
    """
    zeros = crc32c(bytes(8))
    tables = np.array(
        [[crc32c(bytes(i) + bytes([b]) + bytes(7 - i)) ^ zeros for b in range(256)] for i in range(4)],
        dtype=np.uint32,
    )
    return zeros, tables


_CRC_ZEROS, _CRC_TABLES = _crc_tables()


def _next_header(data: bytes, start: int) -> int | None:
    """The first offset from `start` where a whole frame header holds, or None.

    A real header's length is at most `_MAX_RECORD` (< 2**32) and not 0, so of its 8 bytes
    the last 4 are zero and one of the first 4 is not; numpy finds those offsets, and only
    they get their checksum computed (vectorised, see `_crc_tables`). Blocks of
    `PIECE_BYTES` keep the temporaries small: larger ones cost page faults, not just memory.
    """
    view = np.frombuffer(data, np.uint8)
    last = len(view) - _HEADER.size  # the last offset with a whole header after it
    for lo in range(start, last + 1, PIECE_BYTES):
        hits = _headers_in(view[lo : min(lo + PIECE_BYTES, last + 1) + _HEADER.size - 1])
        for pos in hits.tolist():
            if _header_length(data, lo + pos):  # the length's exact bound, and the vectorised CRC, once more
                return lo + pos
    return None


def _headers_in(view: np.ndarray) -> np.ndarray:
    """Offsets in `view` where a frame header's length is plausible and its checksum holds."""
    n = len(view) - _HEADER.size + 1
    pairs = view[:-1] | view[1:]
    quads = pairs[:-2] | pairs[2:]  # quads[p]: the OR of bytes p..p+3
    idx = np.flatnonzero((quads[4 : 4 + n] == 0) & (quads[:n] != 0) & (view[3 : 3 + n] <= _MAX_RECORD >> 24))
    if not idx.size:  # zeros, text, random bytes: almost always
        return idx
    crc = np.full(len(idx), _CRC_ZEROS, dtype=np.uint32)
    for i in range(4):
        crc ^= _CRC_TABLES[i][view[idx + i]]
    masked = ((crc >> 15) | (crc << 17)) + np.uint32(0xA282EAD8)
    stored = view[idx + 8].astype(np.uint32)
    for i in range(1, 4):
        stored |= view[idx + 8 + i].astype(np.uint32) << (8 * i)
    return idx[masked == stored]


class EventFileTail:
    """Reads the records appended to one event file since the last call, a piece at a time."""

    def __init__(self, path: Path, piece_bytes: int = PIECE_BYTES) -> None:
        self.path = path
        #: The first byte not yet taken: records before it were read, or skipped as damage.
        self.offset = 0
        #: False while the last refresh stopped on its time budget with bytes still unread.
        self.caught_up = True
        self._piece = max(piece_bytes, _HEADER.size + _CRC.size)
        self._need = 0  # bytes the record at `offset` needs when it is longer than a piece
        self._damage: int | None = None  # where the damaged stretch being skipped began
        self._damage_line: int | None = None
        self._lines: list[str] = []
        self._more = 0

    @property
    def problems(self) -> list[str]:
        more = [f"{self.path.name}: {self._more} more problems, not listed"] if self._more else []
        return self._lines + more

    def pending_bytes(self) -> int:
        """Bytes after the last complete record (a record still being written, or a torn end);
        not those left unread for lack of time, nor the end of a damaged stretch (`problems`
        says so)."""
        if not self.caught_up or self._damage is not None:
            return 0
        try:
            return max(0, self.path.stat().st_size - self.offset)
        except OSError:
            return 0

    def read_new(self, deadline: float = math.inf) -> Iterator[Event]:
        """The records appended since the last call, read piece by piece until `deadline`
        (a `time.perf_counter()` value) has passed: at least one piece, at most the file."""
        self.caught_up = True
        try:
            size = self.path.stat().st_size
        except OSError:
            return
        if size < self.offset:
            self._flag(f"{self.path.name} shrank from {self.offset} to {size} bytes; kept the points read before")
            self.offset, self._need, self._damage = size, 0, None
            return
        if self.offset + max(self._need, 1) > size:  # nothing new, or not yet the rest of a long record
            return
        try:
            fh = self.path.open("rb")
        except OSError:
            return
        with fh:
            while True:
                fh.seek(self.offset)
                data = fh.read(min(max(self._piece, self._need), size - self.offset))
                at_end = self.offset + len(data) >= size
                self.offset += yield from self._parse(data)
                if at_end:
                    return
                if time.perf_counter() >= deadline:
                    self.caught_up = False
                    return

    def _parse(self, data: bytes) -> Generator[Event, None, int]:
        """Yields the events of `data` (read at `offset`); returns how many bytes it took."""
        self._need = 0
        pos = 0 if self._damage is None else self._resync(data, 0)
        while pos + _HEADER.size <= len(data):
            length = _header_length(data, pos)
            if not length:
                self._open_damage(self.offset + pos)
                pos = self._resync(data, pos + 1)
                continue
            end = pos + _HEADER.size + length + _CRC.size
            if end > len(data):  # incomplete: the writer has not finished it, or it is longer than a piece
                self._need = end - pos
                break
            payload = data[pos + _HEADER.size : end - _CRC.size]
            (data_crc,) = _CRC.unpack_from(data, end - _CRC.size)
            if masked_crc32c(payload) != data_crc:
                self._flag(f"{self.path.name}: record at byte {self.offset + pos} fails its checksum; skipped")
            else:
                try:
                    yield Event.FromString(payload)
                except DecodeError:
                    self._flag(f"{self.path.name}: record at byte {self.offset + pos} is not an Event; skipped")
            pos = end
        return pos

    def _resync(self, data: bytes, start: int) -> int:
        """Where reading goes on in `data` after damage: the next valid frame, or past every
        offset that has a whole header in `data` (later bytes may complete one)."""
        found = _next_header(data, start)
        if found is None:
            return max(start, len(data) - _HEADER.size + 1)
        self._close_damage(self.offset + found)
        return found

    def _open_damage(self, at: int) -> None:
        """One line per damaged stretch however many pieces and refreshes it spans."""
        self._damage = at
        self._damage_line = self._flag(
            f"{self.path.name}: damaged record header at byte {at}; no valid record after it yet"
        )

    def _close_damage(self, at: int) -> None:
        start, self._damage = self._damage, None
        if self._damage_line is not None and start is not None:
            self._lines[self._damage_line] = (
                f"{self.path.name}: damaged record header at byte {start}; skipped {at - start} bytes"
            )

    def _flag(self, message: str) -> int | None:
        """Adds a line (its index) unless `MAX_PROBLEMS` are there, then only counts it."""
        if message in self._lines:
            return None
        if len(self._lines) >= MAX_PROBLEMS:
            self._more += 1
            return None
        self._lines.append(message)
        return len(self._lines) - 1


def _file_order(path: Path) -> tuple[int, str]:
    match = _STAMP.match(path.name)
    return (int(match.group(1)) if match else 0, path.name)


class CurveReader:
    """All scalars of one TensorBoard log folder; `refresh()` reads what was appended."""

    def __init__(self, log_dir: str | Path, piece_bytes: int = PIECE_BYTES, budget_s: float = REFRESH_BUDGET_S) -> None:
        self.log_dir = Path(log_dir)
        self.series: dict[str, Series] = {}
        #: Points read so far (replaced ones included): it changes exactly when a curve does.
        self.points = 0
        self._piece = piece_bytes
        self._budget = budget_s
        self._tails: dict[Path, EventFileTail] = {}
        self._lock = threading.Lock()  # one reader may serve several dashboard sessions

    def refresh(self) -> int:
        """Read new records of every event file, for about `budget_s` at most (see
        `REFRESH_BUDGET_S`); returns how many scalar points arrived."""
        with self._lock:
            deadline = time.perf_counter() + self._budget
            files = sorted(self.log_dir.glob(EVENT_GLOB), key=_file_order) if self.log_dir.is_dir() else []
            added = 0
            for path in files:
                tail = self._tails.setdefault(path, EventFileTail(path, self._piece))
                for event in tail.read_new(deadline):
                    for value in event.summary.value:
                        if value.HasField("simple_value"):
                            self.series.setdefault(value.tag, Series()).add(
                                int(event.step), float(value.simple_value), float(event.wall_time)
                            )
                            added += 1
            self.points += added
            return added

    @property
    def caught_up(self) -> bool:
        """Whether the last refresh read every file to its end (else the next one goes on)."""
        return all(tail.caught_up for tail in self._tails.values())

    @property
    def problems(self) -> list[str]:
        """Damage found in the event files so far, one line each."""
        return [p for tail in self._tails.values() for p in tail.problems]

    def pending_bytes(self) -> int:
        """Bytes of unfinished records; in a run that has ended they are a torn file end."""
        return sum(tail.pending_bytes() for tail in self._tails.values())

    def get(self, tag: str) -> Series:
        return self.series.get(tag, Series())

    def started(self) -> float | None:
        """The wall-clock time of the run's first point: where a time axis starts."""
        return min((s.walls[0] for s in self.series.values() if s.walls), default=None)

    def ended(self) -> float:
        """The wall-clock time of the run's latest point (0.0 before any)."""
        return max((s.walls[-1] for s in self.series.values() if s.walls), default=0.0)

    def epochs_at(self, steps: list[int]) -> list[float]:
        """Each step as the epochs trained by then (1.0 where the first epoch ends).

        Lightning logs the epoch number with each point, and a validation point at the last
        step of its epoch, so every epoch that has a later one (or a validation) ends at the
        last step logged with its number. Steps are interpolated between those ends; in the
        epoch still running, the previous epoch's length is assumed (and the number never
        passes the epoch's end); before any epoch has ended, a point sits at its epoch's start.
        """
        epoch = self.get("epoch")
        if not epoch.steps:
            return [0.0] * len(steps)
        last_step: dict[int, int] = {}
        for step, value in zip(epoch.steps, epoch.values):
            last_step[int(value)] = step  # steps ascend: the last one stays
        validated = set(self.get("val_loss").steps)
        newest = max(last_step)
        ends = [(e, s) for e, s in sorted(last_step.items()) if e < newest or s in validated]
        if not ends:
            return [float(newest)] * len(steps)
        xs = np.array([-1.0, *(s for _, s in ends)])
        ys = np.array([0.0, *(e + 1.0 for e, _ in ends)])
        length = xs[-1] - xs[-2] if len(xs) > 2 else xs[-1] + 1.0
        at = np.asarray(steps, dtype=float)
        inside = np.interp(at, xs, ys)
        beyond = np.minimum(ys[-1] + (at - xs[-1]) / max(length, 1.0), ys[-1] + 1.0)
        return np.where(at > xs[-1], beyond, inside).tolist()


def curves_csv(readers: Mapping[str, CurveReader]) -> str:
    """Every point the readers hold as CSV, `run,tag,step,epoch,seconds,value` (the curves
    chart's data, unthinned, on each of its x axes; seconds since the run's first point)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["run", "tag", "step", "epoch", "seconds", "value"])
    for run, reader in readers.items():
        start = reader.started() or 0.0
        for tag, series in sorted(reader.series.items()):
            epochs = reader.epochs_at(series.steps)
            writer.writerows(
                (run, tag, step, f"{epoch:.4f}", f"{wall - start:.3f}", repr(value))
                for step, epoch, wall, value in zip(series.steps, epochs, series.walls, series.values)
            )
    return out.getvalue()


def smooth(values: list[float], weight: float) -> list[float]:
    """TensorBoard's debiased exponential moving average; weight 0 returns the values."""
    if weight <= 0:
        return list(values)
    out, last = [], 0.0
    for i, v in enumerate(values, start=1):
        last = last * weight + (1 - weight) * v
        out.append(last / (1 - weight**i))
    return out


def downsample(xs: Sequence[float], values: Sequence[float], max_points: int = 1000) -> tuple[list, list]:
    """At most `max_points` evenly strided points, always keeping the last one."""
    if len(xs) <= max_points:
        return list(xs), list(values)
    stride = -(-len(xs) // max_points)
    idx = list(range(0, len(xs), stride))
    if idx[-1] != len(xs) - 1:
        idx[-1] = len(xs) - 1
    return [xs[i] for i in idx], [values[i] for i in idx]
