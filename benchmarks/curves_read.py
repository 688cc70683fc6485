"""Reading live curves: autotag's incremental reader against EventAccumulator and tbparse.

Writes 50 runs x 2,000 steps x 4 scalars with torch's SummaryWriter (as Lightning does),
then times, in one process: the first full load of all runs by each reader, and a
refresh of all 50 runs when nothing was appended (what the Runs page does every 2 s).

Then damaged event files, 100 records before and after the damage, read by refreshing
back to back until the reader has caught up: a sparse hole of zeros (200 MB, no bytes on
disk), random bytes, and bytes where every 8th offset holds a plausible record length
(the resync's worst case: each such offset's checksum is computed). Per file: refreshes,
CPU seconds in all, the longest refresh, the peak memory of one refresh (tracemalloc, in a
second pass) and when the records after the damage showed.

    .venv/bin/python -m benchmarks.curves_read [--runs 50] [--steps 2000] [--hole-mb 200] [--garbage-mb 32]
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

from tbparse import SummaryReader
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.tensorboard import SummaryWriter

from autotag.runs.curves import CurveReader

TAGS = ("train_loss", "val_loss", "val_roc_auc", "val_pr_auc")


def write_runs(root: Path, runs: int, steps: int) -> list[Path]:
    folders = []
    for r in range(runs):
        folder = root / f"run{r:03d}" / "tb"
        writer = SummaryWriter(str(folder))
        for step in range(steps):
            for i, tag in enumerate(TAGS):
                writer.add_scalar(tag, 1.0 / (step + 1) + i + r, step)
        writer.close()
        folders.append(folder)
    return folders


def timed(fn) -> tuple[float, object]:  # noqa: ANN001
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def damaged_file(root: Path, name: str, write_damage: Callable[[int], None], size: int) -> Path:
    """A run folder whose one event file is 100 records, `size` damaged bytes, 100 records."""
    records = write_runs(root / f"{name}-src", 1, 25)[0]
    data = next(records.glob("events.out.tfevents.*")).read_bytes()
    folder = root / name
    folder.mkdir()
    with (folder / "events.out.tfevents.1.host").open("wb") as fh:
        fh.write(data)
        write_damage(fh.fileno())
        fh.seek(len(data) + size)
        fh.write(data)
    return folder


def read_through(folder: Path) -> tuple[int, float, float, float]:
    """Refreshes until caught up: (refreshes, CPU s in all, longest refresh s, s until the
    records after the damage showed)."""
    reader = CurveReader(folder)
    refreshes, longest, shown = 0, 0.0, float("nan")
    cpu, start = time.process_time(), time.perf_counter()
    while True:
        began = time.perf_counter()
        reader.refresh()
        longest = max(longest, time.perf_counter() - began)
        refreshes += 1
        if reader.points == 2 * 100 and shown != shown:
            shown = time.perf_counter() - start
        if reader.caught_up:
            return refreshes, time.process_time() - cpu, longest, shown


def peak_memory(folder: Path) -> int:
    """The most bytes allocated during one refresh while reading `folder` through."""
    reader, peak = CurveReader(folder), 0
    tracemalloc.start()
    try:
        while True:
            tracemalloc.reset_peak()
            reader.refresh()
            peak = max(peak, tracemalloc.get_traced_memory()[1])
            if reader.caught_up:
                return peak
    finally:
        tracemalloc.stop()


def damaged_reads(root: Path, hole_mb: int, garbage_mb: int) -> None:
    hole, garbage = hole_mb << 20, garbage_mb << 20
    lengths = (b"\x01" + bytes(7)) * (garbage // 8)
    cases = {
        f"sparse hole, {hole_mb} MB": (lambda fd: os.ftruncate(fd, os.lseek(fd, 0, os.SEEK_CUR) + hole), hole),
        f"random bytes, {garbage_mb} MB": (lambda fd: os.write(fd, random.Random(0).randbytes(garbage)), garbage),
        f"a length every 8 bytes, {garbage_mb} MB": (lambda fd: os.write(fd, lengths), len(lengths)),
    }
    print("damaged file (100 records, damage, 100 records): refreshes, CPU, longest refresh, peak memory, after")
    for i, (name, (write, size)) in enumerate(cases.items()):
        folder = damaged_file(root, f"damaged{i}", write, size)
        refreshes, cpu, longest, shown = read_through(folder)
        peak = peak_memory(folder)
        print(
            f"  {name:<30}: {refreshes:3d} refreshes, {cpu:6.2f} s CPU, longest {longest * 1000:5.0f} ms, "
            f"peak {peak / 2**20:5.2f} MiB, records after it in {shown:5.2f} s ({size / 2**20 / cpu:5.0f} MiB/s)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--hole-mb", type=int, default=200, help="size of the sparse hole in a damaged file")
    parser.add_argument("--garbage-mb", type=int, default=32, help="size of the other damaged stretches")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folders = write_runs(Path(tmp), args.runs, args.steps)
        expected = args.runs * args.steps * len(TAGS)

        def ours() -> list[CurveReader]:
            readers = [CurveReader(f) for f in folders]
            for reader in readers:
                reader.refresh()
                while not reader.caught_up:  # a refresh reads for ~0.1 s: a busy machine may need two
                    reader.refresh()
            return readers

        def accumulator() -> int:
            total = 0
            for f in folders:
                acc = EventAccumulator(str(f), size_guidance={"scalars": 0})
                acc.Reload()
                total += sum(len(acc.Scalars(t)) for t in TAGS)
            return total

        t_ours, readers = timed(ours)
        t_acc, n_acc = timed(accumulator)
        t_tbp, frame = timed(lambda: SummaryReader(tmp, pivot=False).scalars)
        n_ours = sum(len(s.steps) for r in readers for s in r.series.values())
        assert n_ours == n_acc == len(frame) == expected, (n_ours, n_acc, len(frame), expected)
        refresh = min(timed(lambda: [r.refresh() for r in readers])[0] for _ in range(5))
    print(f"{args.runs} runs x {args.steps} steps x {len(TAGS)} scalars = {expected:,} points")
    print(f"autotag CurveReader, first load : {t_ours:7.3f} s")
    print(
        f"EventAccumulator, first load    : {t_acc:7.3f} s   ratio ours/EA     {t_ours / t_acc:5.2f}  (target <= 0.3)"
    )
    print(f"tbparse, first load             : {t_tbp:7.3f} s   ratio ours/tbparse {t_ours / t_tbp:5.2f}")
    print(f"refresh of all runs, nothing new: {refresh * 1000:7.2f} ms  (target <= 10 ms)")
    with tempfile.TemporaryDirectory() as tmp:
        damaged_reads(Path(tmp), args.hole_mb, args.garbage_mb)


if __name__ == "__main__":
    main()
