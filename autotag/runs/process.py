"""Entry points of the processes that the runs layer starts:

    python -m autotag.runs.process exec RUN [--resume CKPT]     a background trainer (`manager`)
    python -m autotag.runs.process warm RUNS --owner PID --fingerprint FP   the pre-warmed trainer (`warm`)

A trainer forked from the pre-warmed one runs `main` with the same `exec` arguments, so it
is the same as a fresh one; under DDP, Lightning re-runs this module's command line for the
other ranks. They live here, below the command line, so the runs layer never imports the
CLI (`python -m autotag runs exec` is the same `train_run`, for SLURM jobs).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from autotag.logs import setup_logging
from autotag.paths import absolute
from autotag.runs import manager, warm
from autotag.store.checkpoints import own_checkpoint
from autotag.store.job import RunState
from autotag.store.run_folder import RunError, RunFolder

log = logging.getLogger("autotag.runs.process")


def train_run(run: Path, resume: str | None = None) -> int:
    """Body of a background run: output already goes to train.log, so log to stderr only.

    Under DDP every rank runs this (Lightning's launcher re-runs the command line, or srun
    starts it on each machine); only rank 0 schedules the next queued run.

    Args:
        resume: The checkpoint to continue from, relative to the run folder, as status.json's
            `resume_from` says. That file is anyone's to edit, so the checkpoint must be one
            of the run's own (`checkpoints.own_checkpoint`); any other fails the run unstarted.
    """
    from autotag.training.distributed import is_rank_zero

    run = absolute(run)
    logging.getLogger("lightning.pytorch").setLevel(logging.INFO)
    try:
        return _train(run, resume)
    finally:
        if is_rank_zero():
            manager.schedule(run.parent)  # hand the free slot to the next queued run


def _train(run: Path, resume: str | None) -> int:
    from autotag.training.distributed import is_rank_zero
    from autotag.training.fit import RunStopped, fit

    try:
        resume_from = own_checkpoint(run, resume) if resume else None
    except RunError as exc:
        if is_rank_zero():
            log.error("cannot resume: %s", exc)
            RunFolder(run).write_status(state=RunState.FAILED, error=f"cannot resume: {exc}", ended=time.time())
        return 1
    try:
        fit(RunFolder(run).config, run, log_file=False, resume_from=resume_from)
    except RunStopped:
        pass
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from autotag.runs.warm import serve

    parser = argparse.ArgumentParser(prog=f"python -m {warm.PROCESS_MODULE}", description="autotag's own processes")
    sub = parser.add_subparsers(dest="process", required=True)
    p = sub.add_parser("exec", help="train a run in this process")
    p.add_argument("run")
    p.add_argument("--resume", default=None, help="checkpoint, relative to the run folder")
    p = sub.add_parser("warm", help="the pre-warmed trainer of a runs folder")
    p.add_argument("runs_folder")
    p.add_argument("--owner", type=int, required=True)
    p.add_argument("--fingerprint", required=True)
    args = parser.parse_args(argv)
    setup_logging()
    if args.process == "exec":
        return train_run(Path(args.run), args.resume)
    serve(absolute(args.runs_folder), args.owner, args.fingerprint, trainer=main)
    return 0


if __name__ == "__main__":
    sys.exit(main())
