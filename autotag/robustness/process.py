"""The background process of a robustness report: `python -m autotag.robustness.process RUN ...`.

`robustness.job` starts it and keeps its files; `robustness.report` does the work. Apart
from both, so that the job (which the dashboard imports) never imports the report (which
imports torch), and the report imports the job's files without a circle.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from autotag.audio.perturb import PERTURBATIONS
from autotag.robustness.job import MODULE, ReportFolder, RobustnessError
from autotag.store.job import RunState


def main(argv: Sequence[str] | None = None) -> int:
    """The report process: `python -m autotag.robustness.process RUN [--split] [--perturbations] [--data]`.

    Stop is heard from the first line (a SIGTERM while torch is still being imported ends
    the report "stopped", not killed), and a refusal ends it "failed" with its reason.
    """
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    from autotag.logs import setup_logging
    from autotag.robustness.report import make_report

    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}")
    parser.add_argument("run")
    parser.add_argument("--split", default="test")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--perturbations", action="append", default=[])
    parser.add_argument("--data", default=None)
    args = parser.parse_args(argv)
    setup_logging()
    try:
        perturbations = args.perturbations or list(PERTURBATIONS)
        make_report(Path(args.run), args.split, perturbations, args.seed, stop=stop, data=args.data)
    except RobustnessError as exc:
        ReportFolder(args.run).write_status(state=RunState.FAILED, ended=time.time(), error=str(exc))
        print(f"autotag: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
