"""Scalar curves out of a run's TensorBoard event files, read incrementally.

One `CurveReader` per run keeps a loader per event file, and each loader keeps its
file offset (tensorboard's own record reader and protobufs), so a refresh reads only
records appended since the last one, and a refresh of an unchanged file is one stat.
A resumed run writes a new event file that repeats steps after its checkpoint; those
newer points replace the older ones, so every step is plotted once.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

from tensorboard.backend.event_processing.event_file_loader import LegacyEventFileLoader

_EVENT_GLOB = "events.out.tfevents.*"
_STAMP = re.compile(r"events\.out\.tfevents\.(\d+)")


@dataclass
class Series:
    """One scalar over steps; `steps` ascend."""

    steps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    wall_times: list[float] = field(default_factory=list)

    def add(self, step: int, value: float, wall_time: float) -> None:
        while self.steps and self.steps[-1] >= step:  # rewritten after a resume: newest wins
            self.steps.pop()
            self.values.pop()
            self.wall_times.pop()
        self.steps.append(step)
        self.values.append(value)
        self.wall_times.append(wall_time)


def _file_order(path: Path) -> tuple[int, str]:
    match = _STAMP.match(path.name)
    return (int(match.group(1)) if match else 0, path.name)


class CurveReader:
    """All scalars of one TensorBoard log folder; `refresh()` reads what was appended."""

    def __init__(self, log_dir: str | Path) -> None:
        self.log_dir = Path(log_dir)
        self.series: dict[str, Series] = {}
        self._loaders: dict[Path, LegacyEventFileLoader] = {}
        self._lock = threading.Lock()  # one reader may serve several dashboard sessions

    def refresh(self) -> int:
        """Read new records of every event file; returns how many scalar points arrived."""
        with self._lock:
            files = sorted(self.log_dir.glob(_EVENT_GLOB), key=_file_order) if self.log_dir.is_dir() else []
            added = 0
            for path in files:
                loader = self._loaders.get(path)
                if loader is None:
                    loader = self._loaders[path] = LegacyEventFileLoader(str(path))
                for event in loader.Load():
                    for value in event.summary.value:
                        if value.HasField("simple_value"):
                            self.series.setdefault(value.tag, Series()).add(
                                int(event.step), float(value.simple_value), float(event.wall_time)
                            )
                            added += 1
            return added

    def get(self, tag: str) -> Series:
        return self.series.get(tag, Series())

    def tags(self) -> list[str]:
        return sorted(self.series)


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
