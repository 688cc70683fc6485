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
"""

from __future__ import annotations

import re
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from crc32c import crc32c
from google.protobuf.message import DecodeError
from tensorboard.compat.proto.event_pb2 import Event

EVENT_GLOB = "events.out.tfevents.*"
_STAMP = re.compile(r"events\.out\.tfevents\.(\d+)")


@dataclass
class Series:
    """One scalar over steps; `steps` ascend."""

    steps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)

    def add(self, step: int, value: float) -> None:
        while self.steps and self.steps[-1] >= step:  # rewritten after a resume: newest wins
            self.steps.pop()
            self.values.pop()
        self.steps.append(step)
        self.values.append(value)


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC-32C, in C (tensorboard's own copy is pure Python, 10x slower)."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


_HEADER = struct.Struct("<QI")
_CRC = struct.Struct("<I")
#: No scalar record is anywhere near this long; a larger length means a damaged header.
_MAX_RECORD = 64 << 20


class EventFileTail:
    """Reads the records appended to one event file since the last call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.problems: list[str] = []

    def pending_bytes(self) -> int:
        """Bytes after the last complete record (a record still being written, or a torn end)."""
        try:
            return max(0, self.path.stat().st_size - self.offset)
        except OSError:
            return 0

    def read_new(self) -> Iterator[Event]:
        try:
            size = self.path.stat().st_size
        except OSError:
            return
        if size < self.offset:
            self._flag(f"{self.path.name} shrank from {self.offset} to {size} bytes; kept the points read before")
            self.offset = size
            return
        if size == self.offset:
            return
        with self.path.open("rb") as fh:
            fh.seek(self.offset)
            data = fh.read(size - self.offset)
        pos = 0
        while pos + _HEADER.size <= len(data):
            length, header_crc = _HEADER.unpack_from(data, pos)
            if masked_crc32c(data[pos : pos + 8]) != header_crc or length > _MAX_RECORD:
                skip = self._resync(data, pos + 1)
                self._flag(
                    f"{self.path.name}: damaged record header at byte {self.offset + pos}; skipped {skip - pos} bytes"
                )
                pos = skip
                continue
            end = pos + _HEADER.size + length + _CRC.size
            if end > len(data):
                break  # incomplete: the writer has not finished this record yet
            payload = data[pos + _HEADER.size : end - _CRC.size]
            (data_crc,) = _CRC.unpack_from(data, end - _CRC.size)
            start, pos = pos, end
            if masked_crc32c(payload) != data_crc:
                self._flag(f"{self.path.name}: record at byte {self.offset + start} fails its checksum; skipped")
                continue
            try:
                yield Event.FromString(payload)
            except DecodeError:
                self._flag(f"{self.path.name}: record at byte {self.offset + start} is not an Event; skipped")
        self.offset += pos

    @staticmethod
    def _resync(data: bytes, start: int) -> int:
        """Offset of the next frame whose header checksum holds (or the end of `data`)."""
        for pos in range(start, len(data) - _HEADER.size + 1):
            length, header_crc = _HEADER.unpack_from(data, pos)
            if length <= _MAX_RECORD and masked_crc32c(data[pos : pos + 8]) == header_crc:
                return pos
        return len(data)

    def _flag(self, message: str) -> None:
        if message not in self.problems:
            self.problems.append(message)


def _file_order(path: Path) -> tuple[int, str]:
    match = _STAMP.match(path.name)
    return (int(match.group(1)) if match else 0, path.name)


class CurveReader:
    """All scalars of one TensorBoard log folder; `refresh()` reads what was appended."""

    def __init__(self, log_dir: str | Path) -> None:
        self.log_dir = Path(log_dir)
        self.series: dict[str, Series] = {}
        #: Points read so far (replaced ones included): it changes exactly when a curve does.
        self.points = 0
        self._tails: dict[Path, EventFileTail] = {}
        self._lock = threading.Lock()  # one reader may serve several dashboard sessions

    def refresh(self) -> int:
        """Read new records of every event file; returns how many scalar points arrived."""
        with self._lock:
            files = sorted(self.log_dir.glob(EVENT_GLOB), key=_file_order) if self.log_dir.is_dir() else []
            added = 0
            for path in files:
                tail = self._tails.setdefault(path, EventFileTail(path))
                for event in tail.read_new():
                    for value in event.summary.value:
                        if value.HasField("simple_value"):
                            self.series.setdefault(value.tag, Series()).add(int(event.step), float(value.simple_value))
                            added += 1
            self.points += added
            return added

    @property
    def problems(self) -> list[str]:
        """Damage found in the event files so far, one line each."""
        return [p for tail in self._tails.values() for p in tail.problems]

    def pending_bytes(self) -> int:
        """Bytes of unfinished records; in a run that has ended they are a torn file end."""
        return sum(tail.pending_bytes() for tail in self._tails.values())

    def get(self, tag: str) -> Series:
        return self.series.get(tag, Series())


def smooth(values: list[float], weight: float) -> list[float]:
    """TensorBoard's debiased exponential moving average; weight 0 returns the values."""
    if weight <= 0:
        return list(values)
    out, last = [], 0.0
    for i, v in enumerate(values, start=1):
        last = last * weight + (1 - weight) * v
        out.append(last / (1 - weight**i))
    return out


def downsample(steps: list[int], values: list[float], max_points: int = 1000) -> tuple[list[int], list[float]]:
    """At most `max_points` evenly strided points, always keeping the last one."""
    if len(steps) <= max_points:
        return steps, values
    stride = -(-len(steps) // max_points)
    idx = list(range(0, len(steps), stride))
    if idx[-1] != len(steps) - 1:
        idx[-1] = len(steps) - 1
    return [steps[i] for i in idx], [values[i] for i in idx]
