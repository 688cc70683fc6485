"""`python -m autotag runs list|schedule|show|stop|resume|delete|export-slurm` (and `exec`, the trainer's entry)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from autotag.cli.args import int_in
from autotag.paths import absolute
from autotag.runs import manager
from autotag.store.files import text_head
from autotag.store.job import RunState
from autotag.store.run_folder import RunError, RunFolder


def add_runs_dir_option(parser: argparse.ArgumentParser, purpose: str, top_level: bool = True) -> None:
    """`--runs-dir FOLDER`, absolute once parsed.

    `runs` takes it before and after its subcommand (`runs --runs-dir X list` and `runs
    list --runs-dir X`): the subcommand's copy defaults to SUPPRESS, so leaving it out
    there keeps the value given before the subcommand instead of resetting it to None.
    """
    parser.add_argument(
        "--runs-dir",
        type=absolute,
        default=None if top_level else argparse.SUPPRESS,
        help=f"{purpose} (default $AUTOTAG_RUNS_DIR or ./runs)",
    )


def warn_if_unfinished(run: Path) -> None:
    """Say so on stderr when a command uses a run that did not complete: its best
    checkpoint may be from early in training (running, stopped) or the run may have
    ended in an error (failed, crashed)."""
    state = manager.derive_state(run)  # may record "crashed": read the status after it
    if state is RunState.COMPLETED:
        return
    error = RunFolder(run).read_status().error if state in (RunState.FAILED, RunState.CRASHED) else None
    why = f" ({str(error).splitlines()[0]})" if error else ""
    print(
        f"autotag: warning: run {run.name} is {state}{why}; using its best checkpoint so far",
        file=sys.stderr,
    )


def _fmt(value: object, spec: str = ".4f") -> str:
    return "-" if value is None else format(value, spec) if isinstance(value, float) else str(value)


def _cmd_list(args: argparse.Namespace) -> int:
    """Reads only: starting queued runs is `runs schedule`'s job (and the dashboard's)."""
    runs = manager.list_runs(args.runs_dir)
    if not runs:
        print("no runs yet", file=sys.stderr)
        return 0
    print(f"{'run':<48} {'state':<10} {'epoch':>9} {'best val_loss':>13} {'test ROC-AUC':>12}")
    for r in runs:
        s = r.status
        epoch = f"{s.epoch}/{s.max_epochs or '?'}" if s.epoch is not None else "-"
        auc = "n/a" if r.state is RunState.COMPLETED and s.test_roc_auc is None else _fmt(s.test_roc_auc)
        print(f"{r.name:<48} {r.state:<10} {epoch:>9} {_fmt(s.best_val_loss):>13} {auc:>12}")
    if any(r.state is RunState.QUEUED for r in runs) and not any(r.state.active for r in runs):
        print(
            "queued runs wait for a free slot: start them with `python -m autotag runs schedule` "
            "(the dashboard's Runs page does this by itself)",
            file=sys.stderr,
        )
    return 0


def _cmd_schedule(args: argparse.Namespace) -> int:
    started = manager.schedule(args.runs_dir)
    for run in started:
        print(f"{run.name}: started")
    if not started:
        print("no queued run can start now", file=sys.stderr)
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    run = manager.resolve_run(args.run, args.runs_dir)
    folder = RunFolder(run)
    status = folder.read_status()
    status.state = manager.derive_state(run, status)
    print(json.dumps({"run": str(run), "status": status.to_json()}, indent=2, default=str))
    print(text_head(folder.config), end="")
    return 0


def _cmd_stop(args: argparse.Namespace) -> int:
    run = manager.resolve_run(args.run, args.runs_dir)
    print(f"{run.name}: {manager.stop(run, grace=args.grace)}")
    return 0


def _cmd_resume(args: argparse.Namespace) -> int:
    run = manager.resolve_run(args.run, args.runs_dir)
    ckpt = manager.resume(run)
    print(f"{run.name}: queued to resume from {ckpt.name}")
    return 0


def _cmd_delete(args: argparse.Namespace) -> int:
    run = manager.resolve_run(args.run, args.runs_dir)
    manager.delete(run)
    print(f"deleted {run}")
    return 0


def _cmd_exec(args: argparse.Namespace) -> int:
    """A run's trainer in this process (how a SLURM job continues a run); see `autotag.runs.process`."""
    from autotag.runs.process import train_run

    return train_run(absolute(args.run), args.resume)


def _cmd_export_slurm(args: argparse.Namespace) -> int:
    from autotag.config import load_config
    from autotag.training.slurm import sbatch_script

    run = manager.resolve_run(args.run, args.runs_dir)
    folder = RunFolder(run)
    config = load_config(folder.config)
    try:
        script = sbatch_script(
            config,
            folder.label,
            args.project_dir,
            nodes=args.nodes or config.num_nodes,
            gpus_per_node=args.gpus_per_node or config.devices,
            time_limit=args.time,
            partition=args.partition,
            cpus_per_gpu=args.cpus_per_gpu,
            source=str(run),
        )
    except ValueError as exc:
        raise RunError(str(exc)) from None
    return write_sbatch(script, args.out)


def write_sbatch(script: str, out: Path | None) -> int:
    """An sbatch script into `out` (saying how to submit it), or onto stdout; the exit status."""
    if out:
        out.write_text(script, encoding="utf-8")
        print(f"wrote {out}; submit it with: sbatch {out}", file=sys.stderr)
    else:
        print(script, end="")
    return 0


def add_runs_parser(sub: argparse._SubParsersAction) -> None:
    runs = sub.add_parser("runs", help="background runs: list, schedule, show, stop, resume, delete, export-slurm")
    add_runs_dir_option(runs, "runs folder")
    cmds = runs.add_subparsers(dest="runs_command", required=True)
    p = cmds.add_parser("list", help="all runs with their state (changes nothing)")
    add_runs_dir_option(p, "runs folder", top_level=False)
    p.set_defaults(func=_cmd_list)
    p = cmds.add_parser("schedule", help="start queued runs while fewer than $AUTOTAG_MAX_RUNS train")
    add_runs_dir_option(p, "runs folder", top_level=False)
    p.set_defaults(func=_cmd_schedule)
    for name, func, text in (
        ("show", _cmd_show, "a run's status and config"),
        ("stop", _cmd_stop, "stop a running or queued run (resumable)"),
        ("resume", _cmd_resume, "continue a stopped or crashed run from its last checkpoint"),
        ("delete", _cmd_delete, "delete a run folder (stop it first)"),
    ):
        p = cmds.add_parser(name, help=text)
        p.add_argument("run", help="run folder or run name")
        add_runs_dir_option(p, "where to look up a run name", top_level=False)
        p.set_defaults(func=func)
        if name == "stop":
            p.add_argument("--grace", type=float, default=15.0, help="seconds before the trainer is killed")
    p = cmds.add_parser("export-slurm", help="a SLURM job script that trains the run's config with DDP on a cluster")
    p.add_argument("run", help="run folder or run name")
    add_runs_dir_option(p, "where to look up a run name", top_level=False)
    p.add_argument("--nodes", type=int_in(1), default=None, help="machines (default: the config's num_nodes)")
    p.add_argument("--gpus-per-node", type=int_in(1), default=None, help="GPUs per machine (default: its devices)")
    p.add_argument("--cpus-per-gpu", type=int_in(1), default=8, help="CPU cores per GPU task (default 8)")
    p.add_argument("--time", default="24:00:00", help="SLURM time limit (default 24:00:00)")
    p.add_argument("--partition", default=None, help="SLURM partition (default: the cluster's)")
    p.add_argument(
        "--project-dir", type=absolute, default=manager.PROJECT_ROOT, help="this project's folder on the cluster"
    )
    p.add_argument("--out", type=absolute, default=None, help="write the script here (default: print it)")
    p.set_defaults(func=_cmd_export_slurm)
    p = cmds.add_parser("exec", help=argparse.SUPPRESS)
    p.add_argument("run")
    p.add_argument("--resume", default=None)
    p.set_defaults(func=_cmd_exec)
