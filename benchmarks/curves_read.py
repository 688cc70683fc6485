"""Reading live curves: autotag's incremental reader against EventAccumulator and tbparse.

Writes 50 runs x 2,000 steps x 4 scalars with torch's SummaryWriter (as Lightning does),
then times, in one process: the first full load of all runs by each reader, and a
refresh of all 50 runs when nothing was appended (what the Runs page does every 2 s).

    .venv/bin/python -m benchmarks.curves_read [--runs 50] [--steps 2000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--steps", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folders = write_runs(Path(tmp), args.runs, args.steps)
        expected = args.runs * args.steps * len(TAGS)

        def ours() -> list[CurveReader]:
            readers = [CurveReader(f) for f in folders]
            for reader in readers:
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


if __name__ == "__main__":
    main()
