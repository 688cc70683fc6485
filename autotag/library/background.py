"""The background process of a library job: `python -m autotag.library.background OUT [--resume]`.

`library.job` starts it and keeps its files; `library.tag` does the work, as `tag --out`
does in a terminal. Apart from both, so that the job (which the dashboard imports) never
imports the tagging (which imports torch).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from autotag.errors import AutotagError
from autotag.library.job import MODULE, LibraryJob
from autotag.store.job import RunState

#: Seconds between two progress writes to status.json (the last file's is always written).
WRITE_EVERY_S = 0.5


def main(argv: Sequence[str] | None = None) -> int:
    """Tag the job's request into its library; the state it ends in says how it went.

    Stop is heard from the first line (a SIGTERM while torch is still being imported ends
    the job "stopped"); a refusal or a model that does not load ends it "failed" with its reason.
    """
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    from autotag.library.tag import SHOWN_FAILURES, tag_into
    from autotag.logs import setup_logging

    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}")
    parser.add_argument("out")
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)
    setup_logging()
    job = LibraryJob(Path(args.out))
    try:
        request = job.read_request()
        job.write_status(state=RunState.RUNNING, phase="loading the model, counting the files")
        summary = tag_into(
            job.out,
            Path(request.run),
            [Path(p) for p in request.inputs],
            threshold=request.threshold,
            resume=args.resume,
            workers=request.workers,
            formats=tuple(request.formats),
            progress=lambda total: _progress(job, total),
            stop=stop,
            note=lambda line: print(f"autotag: note: {line}", flush=True),
        )
    except AutotagError as exc:
        job.write_status(state=RunState.FAILED, phase=None, ended=time.time(), error=str(exc))
        print(f"autotag: error: {exc}", file=sys.stderr)
        return 2
    state = RunState.STOPPED if stop.is_set() else RunState.COMPLETED
    job.write_status(
        state=state,
        phase=None,
        ended=time.time(),
        done=summary.tagged + summary.failed,
        tagged=summary.tagged,
        skipped=summary.skipped,
        failed=summary.failed,
        failures=summary.failures[:SHOWN_FAILURES],
    )
    for line in summary.unreadable:
        print(f"autotag: warning: cannot read folder {line}")
    print(f"autotag: {state}: {summary.line(job.out)}", flush=True)
    return 0


def _progress(job: LibraryJob, total: int) -> Callable[[int, int], None]:
    """The tagging's progress callback: files done and to do in status.json, at most every
    WRITE_EVERY_S (a status write takes a lock and a rename; a file can take 10 ms)."""
    job.write_status(phase="tagging", started=time.time(), done=0, to_do=total)
    written = 0.0

    def write(done: int, to_do: int) -> None:
        nonlocal written
        now = time.monotonic()
        if done < to_do and now - written < WRITE_EVERY_S:
            return
        written = now
        job.write_status(done=done, to_do=to_do)

    return write


if __name__ == "__main__":
    raise SystemExit(main())
