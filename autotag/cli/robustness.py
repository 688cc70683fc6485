"""`python -m autotag robustness --run RUN [--split] [--perturbations ...] [--format] [--background | --stop]`."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from typing import Any

from autotag.cli.runs import add_runs_dir_option
from autotag.paths import absolute


def render_report(report: dict[str, Any], fmt: str) -> str:
    """The report as JSON (its own shape) or CSV: one row per condition and tag, macro first."""
    if fmt == "json":
        return json.dumps(report, indent=2)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["perturbation", "strength", "tag", "roc_auc", "pr_auc", "flipped"])
    rows = [("clean", "", report["clean"])] + [
        (name, strength, row)
        for name, by_strength in report.items()
        if name != "clean"
        for strength, row in by_strength.items()
    ]
    for name, strength, row in rows:
        flipped = row.get("flipped", "")
        writer.writerow([name, strength, "(macro)", row["roc_auc_macro"], row["pr_auc_macro"], flipped])
        for tag, scores in row["per_tag"].items():
            writer.writerow([name, strength, tag, scores["roc_auc"], scores["pr_auc"], ""])
    return out.getvalue().rstrip("\n")


def _cmd_robustness(args: argparse.Namespace) -> int:
    from autotag.audio.perturb import PERTURBATIONS
    from autotag.robustness import job
    from autotag.runs.manager import resolve_run

    run = resolve_run(args.run, args.runs_dir)
    perturbations = args.perturbations or list(PERTURBATIONS)
    if args.stop:
        stopped = job.stop(run)
        print(
            f"asked the report of {run.name} to stop" if stopped else f"no report of {run.name} is running",
            file=sys.stderr,
        )
        return 0
    data = str(args.data) if args.data else None
    if args.background:
        job.start(run, args.split, perturbations, args.seed, data=data)
        print("robustness report started; the Runs page shows it, `--stop` stops it", file=sys.stderr)
        print(run)
        return 0
    job.check_request(run, args.split, perturbations, data=data)  # refuse before torch is imported
    from autotag.robustness.report import make_report

    report = make_report(run, args.split, perturbations, args.seed, data=data)
    if report is None:
        print("stopped; the same command goes on from the clips already scored", file=sys.stderr)
        return 130
    print(render_report(report, args.format))
    return 0


def add_robustness_parser(sub: argparse._SubParsersAction) -> None:
    from autotag.audio.perturb import PERTURBATIONS
    from autotag.robustness.job import SPLITS

    p = sub.add_parser(
        "robustness",
        help="score a run's split under noise, pitch, tempo, filtering, re-encoding, gain and clipping",
        description="Scores RUN's best checkpoint on its split's clips clean and perturbed; writes "
        "RUN/robustness.json and prints it. A stopped report goes on where it stopped. Perturbations: "
        + "; ".join(
            f"{p.name} ({p.about}: {', '.join(p.label(s) for s in p.strengths)})" for p in PERTURBATIONS.values()
        ),
    )
    p.add_argument("--run", required=True, help="run folder, or a run's name in the runs folder")
    add_runs_dir_option(p, "where to look up a run name")
    p.add_argument("--split", default="test", choices=SPLITS, help="the split to score (default test)")
    p.add_argument(
        "--data", type=absolute, default=None, help="score this data set's split instead (needed for a published model)"
    )
    p.add_argument("--perturbations", nargs="+", metavar="NAME", default=None, help="only these (default: all)")
    p.add_argument("--format", choices=("json", "csv"), default="json", help="what to print (default json)")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise (default 0)")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--background", action="store_true", help="run in a background process (the Runs page shows it)")
    how.add_argument("--stop", action="store_true", help="stop a running report (it keeps the clips it scored)")
    p.set_defaults(func=_cmd_robustness)
