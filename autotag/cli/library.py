"""`python -m autotag library status|stop|resume LIB`: a library tagged in the background.

`tag ... --out LIB --background` starts such a job (as the Library page's Start does); these
commands see it, stop it and resume it, as the page's Stop and Resume do.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from autotag.cli.runs import add_runs_dir_option
from autotag.errors import UsageError
from autotag.paths import absolute
from autotag.store.run_folder import runs_folder
from autotag.text import human_duration


def _cmd_library(args: argparse.Namespace) -> int:
    from autotag.library import job

    out = absolute(args.library)
    tagging = job.LibraryJob(out)
    if not tagging.exists():
        raise UsageError(f"{out.name} has no background job ({tagging.path.name} is not there)")
    runs_dir = runs_folder(args.runs_dir)
    if args.action == "stop":
        stopped = job.stop(out, runs_dir)
        print(
            f"autotag: asked the tagging of {out.name} to stop; the rows written stay"
            if stopped
            else f"autotag: {out.name} is not being tagged (it is {tagging.state()}): nothing to stop",
            file=sys.stderr,
        )
        return 0
    if args.action == "resume":
        job.resume(out, runs_dir)
        print(f"autotag: tagging {out.name} again in the background; its log: {tagging.log}", file=sys.stderr)
        return 0
    print(status_line(out))
    return 0


def status_line(out: Path) -> str:
    """One line: the job's state, and its files done of those to do, or its counts once it ended."""
    from autotag.library import job

    tagging = job.LibraryJob(out)
    state = tagging.state()
    status = tagging.read_status()
    if state.active:
        if status.phase != "tagging":
            return f"{out.name}: {state}, {status.phase or 'starting'}"
        eta = status.eta_s()
        left = f", {human_duration(eta)} left" if eta is not None else ""
        return f"{out.name}: {state}, {status.done} of {status.to_do} files{left}"
    line = f"{out.name}: {state}: tagged {status.tagged}, skipped {status.skipped}, failed {status.failed}"
    return line + (f" ({status.error})" if status.error else "")


def add_library_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "library",
        help="see, stop or resume a library tagged in the background (`tag ... --out LIB --background`)",
        description="A library tagged in the background keeps its state in LIB.tagging/ beside it. status: its "
        "state and files done; stop: it writes no more rows and ends stopped; resume: it tags, again in the "
        "background, the files the library does not hold yet (and those that changed or failed).",
    )
    p.add_argument("action", choices=("status", "stop", "resume"))
    p.add_argument("library", help="the library file the job writes (`--out` of `tag`)")
    add_runs_dir_option(p, "where the audit log is written")
    p.set_defaults(func=_cmd_library)
