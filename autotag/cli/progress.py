"""Progress on a terminal: one line that redraws itself, with an ETA.

Long work that a user waits on at a terminal (rendering the demo set, computing features,
a download) shows how far it is and how long is left. Where stderr is a file or a pipe
(a log, CI, `2>&1 | tee`) the bar draws nothing: a log keeps only lines worth reading.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from autotag.text import human_duration

#: The bar's width in characters, and the least time between two redraws.
WIDTH, REDRAW_S = 30, 0.2


def terminal_bar(
    label: str, count: Callable[[int], str] = str, stream: TextIO | None = None, rate: str | None = None
) -> Callable[[int, int], None] | None:
    """A (done, total) callback drawing `label [####....] done/total, ETA` on `stream` (stderr),
    or None when it is not a terminal.

    Args:
        count: How a number of units reads (`lambda n: f"{n / 1e6:.1f} MB"` for bytes).
        rate: The units' name, to show how many are done per second (`"files"`: `2.5 files/s`).
    """
    stream = stream or sys.stderr
    if not stream.isatty():
        return None
    start, drawn = time.monotonic(), 0.0

    def draw(done: int, total: int) -> None:
        nonlocal drawn
        now = time.monotonic()
        finished = done >= total
        if not finished and now - drawn < REDRAW_S:
            return
        drawn = now
        filled = WIDTH * min(done, total) // max(total, 1)
        left = (now - start) / done * (total - done) if 0 < done < total else None
        eta = f", {human_duration(left)} left" if left is not None and now - start >= 1.0 else ""
        if rate and done and now - start >= 1.0:
            eta = f", {done / (now - start):.1f} {rate}/s{eta}"
        line = f"\r{label} [{'#' * filled}{'.' * (WIDTH - filled)}] {count(done)}/{count(total)}{eta}"
        stream.write(line.ljust(len(line) + 12) + ("\n" if finished else ""))  # the padding wipes a longer ETA
        stream.flush()

    return draw
