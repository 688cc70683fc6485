"""`python -m autotag sweep [list|show|stop|resume|worker] ...`: hyperparameter sweeps with Optuna.

Without an action, `sweep` makes a new sweep from `--space` entries and any `fit` option as
a fixed value, and drives it in the foreground (Ctrl-C stops it resumably), or in the
background with `--background`; the last stdout line is the sweep folder either way.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from autotag.cli.args import int_in
from autotag.cli.runs import add_runs_dir_option, write_sbatch
from autotag.config import TrainConfig
from autotag.errors import UsageError
from autotag.paths import absolute
from autotag.runs.manager import PROJECT_ROOT
from autotag.store.job import RunState
from autotag.training.trial import DIRECTIONS

if TYPE_CHECKING:
    from autotag.sweeps.folder import SweepFolder

ACTIONS = ("list", "show", "stop", "resume", "worker", "export-slurm")
#: Options that only a new sweep takes: destination -> option.
SEARCH_OPTIONS = {
    "trials": "--trials",
    "space": "--space",
    "first": "--try",
    "storage": "--storage",
    "study": "--study",
}


def add_sweep_parser(
    sub: argparse._SubParsersAction, add_config_options: Callable[[argparse.ArgumentParser], None]
) -> None:
    p = sub.add_parser(
        "sweep",
        help="search hyperparameters (Optuna); every trial is a run; prints the sweep folder last",
        description="A new sweep: --data, --trials and --space FIELD=SPEC (repeatable); SPEC is lo:hi, "
        "lo:hi:log or a,b,c, with @OTHER=v1,v2 to search the field only when OTHER has one of those values. "
        "Any fit option (--model tiny, --max-epochs 5) is a value every trial shares. "
        "Actions: list; show, stop, resume, worker, export-slurm SWEEP. export-slurm with the options of "
        "a new sweep (and --storage postgresql+psycopg://...) makes the sweep for a SLURM array without "
        "running it here.",
    )
    p.add_argument("action", nargs="?", choices=ACTIONS, help="what to do with sweeps (none: a new sweep)")
    p.add_argument("sweep", nargs="?", help="a sweep folder, or its name in RUNS/sweeps")
    p.add_argument("--trials", type=int_in(1), default=None, help="finished (complete or pruned) trials to run")
    p.add_argument("--parallel", type=int_in(1), default=1, help="trials this machine trains at once (default 1)")
    p.add_argument("--space", action="append", default=[], metavar="FIELD=SPEC", help="a searched field (repeat)")
    p.add_argument(
        "--try",
        dest="first",
        action="append",
        default=[],
        metavar="FIELD=VALUE,...",
        help="a trial to run before the sampler's own, e.g. a config that went well (repeat)",
    )
    p.add_argument("--sampler", choices=("tpe", "random", "grid"), default="tpe", help="default tpe")
    p.add_argument("--pruner", choices=("median", "hyperband", "none"), default="median", help="default median")
    p.add_argument("--metric", choices=tuple(DIRECTIONS), default="val_loss", help="what trials are ranked by")
    p.add_argument("--storage", default=None, help="SQLAlchemy URL of a shared study (default: SQLite in the sweep)")
    p.add_argument("--study", default=None, help="study name in --storage (default: the sweep folder's name)")
    p.add_argument("--sampler-seed", type=int, default=None, help="seed of the sampler (each trial keeps --seed)")
    p.add_argument("--name", default=None, help="short name in the sweep's and its trials' folder names")
    p.add_argument("--background", action="store_true", help="drive it in a background process and return")
    add_runs_dir_option(p, "where trials' runs and the sweeps/ folder go")
    slurm = p.add_argument_group("export-slurm (a SLURM array job of sweep workers)")
    slurm.add_argument("--workers", type=int_in(1), default=4, help="array tasks, one worker each (default 4)")
    slurm.add_argument("--gpus-per-worker", type=int_in(1), default=1, help="GPUs per task (default 1)")
    slurm.add_argument("--cpus-per-worker", type=int_in(1), default=8, help="CPU cores per task (default 8)")
    slurm.add_argument("--time", default="24:00:00", help="SLURM time limit per task (default 24:00:00)")
    slurm.add_argument("--partition", default=None, help="SLURM partition (default: the cluster's)")
    slurm.add_argument("--project-dir", type=absolute, default=PROJECT_ROOT, help="this project's folder there")
    slurm.add_argument("--out", type=absolute, default=None, help="write the script here (default: print it)")
    add_config_options(p)
    p.set_defaults(func=_cmd_sweep)


def _config_values(args: argparse.Namespace) -> dict[str, Any]:
    return {name: getattr(args, name) for name in TrainConfig.model_fields if getattr(args, name) is not None}


def _cmd_sweep(args: argparse.Namespace) -> int:
    if args.action is None:
        return _new(args)
    if args.action == "export-slurm" and args.sweep is None:  # make the sweep, for the array's workers only
        from autotag.sweeps.slurm import check_shared_storage
        from autotag.training.slurm import check_job_settings

        check_shared_storage(args.storage)  # before a sweep folder exists
        try:
            check_job_settings(args.time, args.partition)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        folder = _create(args)
        print(f"sweep folder: {folder.path}", file=sys.stderr)
        return _export_slurm(folder, args)
    given = [option for dest, option in SEARCH_OPTIONS.items() if getattr(args, dest) not in (None, [])] + [
        f"--{k.replace('_', '-')}" for k in _config_values(args)
    ]
    if given:
        raise UsageError(f"sweep {args.action} takes no {', '.join(given)} (those make a new sweep)")
    if args.action == "list":
        return _list(args)
    if args.sweep is None:
        raise UsageError(f"sweep {args.action} needs a sweep: its folder, or its name (see `sweep list`)")
    from autotag.sweeps import manager

    folder = manager.resolve_sweep(args.sweep, args.runs_dir)
    if args.action == "show":
        return _show(folder)
    if args.action == "stop":
        print(f"{folder.name}: {manager.stop(folder)}")
        return 0
    if args.action == "resume":
        manager.check_resumable(folder)
        return _drive(folder, args.background)
    if args.action == "export-slurm":
        return _export_slurm(folder, args)
    return _drive(folder, background=False, worker=True)


def _export_slurm(folder: SweepFolder, args: argparse.Namespace) -> int:
    from autotag.sweeps.slurm import sweep_sbatch_script

    script = sweep_sbatch_script(
        folder,
        args.project_dir,
        workers=args.workers,
        gpus_per_worker=args.gpus_per_worker,
        cpus_per_worker=args.cpus_per_worker,
        time_limit=args.time,
        partition=args.partition,
    )
    return write_sbatch(script, args.out)


def _new(args: argparse.Namespace) -> int:
    if args.sweep is not None:
        raise UsageError(f"unexpected {args.sweep!r}: a new sweep takes only options (actions: {', '.join(ACTIONS)})")
    folder = _create(args)
    print(f"sweep folder: {folder.path}", file=sys.stderr)
    return _drive(folder, args.background)


def _create(args: argparse.Namespace) -> SweepFolder:
    from autotag.sweeps import manager

    if args.trials is None:
        raise UsageError("a new sweep needs --trials N")
    fixed = _config_values(args)
    if "data" not in fixed:
        raise UsageError("a new sweep needs --data FOLDER")
    return manager.new_sweep(
        fixed,
        args.space,
        trials=args.trials,
        parallel=args.parallel,
        sampler=args.sampler,
        pruner=args.pruner,
        metric=args.metric,
        storage=args.storage,
        study=args.study,
        seed=args.sampler_seed,
        runs_dir=args.runs_dir,
        name=args.name,
        first=args.first,
    )


def _drive(folder: SweepFolder, background: bool, worker: bool = False) -> int:
    from autotag.sweeps import manager
    from autotag.sweeps.driver import SweepFailed, drive
    from autotag.sweeps.results import best_row, load_study

    if background:
        manager.start(folder)
        print(f"driving in the background; follow it with: python -m autotag sweep show {folder.path}", file=sys.stderr)
        print(folder.path, flush=True)
        return 0
    try:
        state = drive(folder, main=not worker)
    except SweepFailed as exc:  # not the user's input (exit 2): trials that keep failing
        print(f"autotag: error: sweep {folder.name} failed: {exc}", file=sys.stderr)
        print(folder.path, flush=True)
        return 1
    best = best_row(load_study(folder))
    if best is not None:
        print(
            f"best: trial {best.number}, {folder.spec().metric} {best.value:.4f}, {best.params}, run {best.run}",
            file=sys.stderr,
        )
    if state is RunState.STOPPED:
        print(f"stopped; continue with: python -m autotag sweep resume {folder.path}", file=sys.stderr)
    print(folder.path, flush=True)
    return 0 if state is RunState.COMPLETED else 1


def _list(args: argparse.Namespace) -> int:
    from autotag.sweeps import manager
    from autotag.sweeps.study import finished

    sweeps = manager.list_sweeps(args.runs_dir)
    if not sweeps:
        print("no sweeps yet", file=sys.stderr)
        return 0
    print(f"{'sweep':<44} {'state':<10} {'finished':>9} {'metric':<12}")
    for s in sweeps:
        print(f"{s.name:<44} {s.state:<10} {f'{finished(s.status.counts)}/{s.spec.trials}':>9} {s.spec.metric:<12}")
    return 0


def _show(folder: SweepFolder) -> int:
    from autotag.sweeps import manager
    from autotag.sweeps.results import best_row, load_study, trial_rows

    study = load_study(folder)
    spec = folder.spec()
    state = manager.derive_state(folder)
    rows = trial_rows(study)
    best = best_row(study)
    print(json.dumps({"sweep": str(folder.path), "state": str(state), "spec": spec.__dict__}, indent=2, default=str))
    print(f"{'trial':>5} {'state':<9} {spec.metric:>12} {'epochs':>6} {'seconds':>8}  params / note")
    for r in rows:
        value = "-" if r.value is None else f"{r.value:.4f}"
        seconds = "-" if r.seconds is None else f"{r.seconds:.0f}"
        mark = " *" if best and r.number == best.number else ""
        params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in r.params.items())
        note = f"  ({r.note.splitlines()[0]})" if r.note else ""
        print(f"{r.number:>5} {r.state:<9} {value:>12} {r.epochs:>6} {seconds:>8}  {params}{note}{mark}")
    if best:
        print(f"best: trial {best.number} ({best.run})")
    return 0
