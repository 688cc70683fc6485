"""Command line: `python -m autotag demo-data | fit | prepare | tag | evaluate | export | robustness | pretrained |
runs | sweep | serve | similar`.

Each command parses its arguments and calls one library function. Bad input (options,
data sets, audio, run folders) exits with status 2 and one clear message on stderr,
before anything is written.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from autotag.cli.args import int_in
from autotag.cli.library import add_library_parser
from autotag.cli.pretrained import add_pretrained_parser
from autotag.cli.progress import terminal_bar
from autotag.cli.robustness import add_robustness_parser
from autotag.cli.runs import add_runs_dir_option, add_runs_parser, warn_if_unfinished
from autotag.cli.serve import add_serve_parser
from autotag.cli.similar import add_similar_parser
from autotag.cli.sweep import add_sweep_parser
from autotag.config import TrainConfig, field_choices, field_range, load_config, make_config
from autotag.errors import AutotagError, UsageError
from autotag.library import MAX_WORKERS
from autotag.logs import setup_logging
from autotag.paths import absolute
from autotag.serving.render import FORMATS
from autotag.text import shorten

USAGE_EXIT = 2
#: 128 + SIGPIPE, what a shell reports for a command whose reader closed the pipe.
BROKEN_PIPE_EXIT = 141
#: 128 + SIGINT, what a shell reports for a command that Ctrl-C ended.
INTERRUPTED_EXIT = 130


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    """One `--field-name` option per config field; pydantic converts and checks values."""
    for name, field in TrainConfig.model_fields.items():
        lo, hi = field_range(name)
        bounds = f" [{lo} .. {hi}]" if lo is not None or hi is not None else ""
        default = "required" if field.is_required() else f"default {field.default}"
        parser.add_argument(
            f"--{name.replace('_', '-')}", dest=name, default=None, help=f"{field.description}{bounds} ({default})"
        )


def _probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return value


def _cmd_demo_data(args: argparse.Namespace) -> int:
    from autotag.data.demo import make_demo_dataset

    try:
        out = make_demo_dataset(
            args.out,
            clips=args.clips,
            seed=args.seed,
            synthetic=args.synthetic,
            soundfont=args.soundfont,
            progress=terminal_bar("rendering clips"),
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    print(out)
    return 0


def _config_from_args(args: argparse.Namespace) -> TrainConfig:
    overrides = {name: getattr(args, name) for name in TrainConfig.model_fields if getattr(args, name) is not None}
    if overrides.get("init_from"):  # a run's name in the runs folder, or a run folder's path
        from autotag.runs.manager import resolve_run
        from autotag.training.finetune import source_settings

        overrides["init_from"] = str(resolve_run(overrides["init_from"], getattr(args, "runs_dir", None)))
        inherited = source_settings(overrides["init_from"])
        if not args.config and not inherited.keys() & overrides.keys():  # none given: its weights need them
            overrides = {**inherited, **overrides}
    if args.config:
        return load_config(args.config, **overrides)
    if "data" not in overrides:
        raise UsageError(f"{args.command} needs --data FOLDER (or --config FILE)")
    return make_config(**overrides)


#: Rank 0 of `fit` names its run folder here, so DDP processes that Lightning starts by
#: re-running this command line join that run instead of creating their own.
RUN_DIR_ENV = "AUTOTAG_RUN_DIR"


def _fit_run_dir(args: argparse.Namespace, config: TrainConfig, made: list[Path]) -> None:
    """The run folder of this `fit` process, appended to `made` as soon as it exists:
    created by rank 0, shared by the other ranks.

    Rank 0 first decodes the data set into the feature cache (which the run then reuses):
    a set whose audio does not decode is refused before a run folder exists. The other
    ranks find the cache built (Lightning starts them from `trainer.fit`) or build it in
    `fit` as before (torchrun and SLURM start every rank at once).
    """
    from autotag.access import Actor, record
    from autotag.data.prepare import open_dataset, prepare_features
    from autotag.store.run_folder import RunFolder, check_writable, create_run, runs_folder
    from autotag.training.distributed import check_devices, is_rank_zero, launched_by_cluster, not_here
    from autotag.training.finetune import check_init_source

    if not is_rank_zero():
        inherited = os.environ.get(RUN_DIR_ENV) or args.run_dir
        if not inherited:
            raise UsageError("a fit started by torchrun or SLURM needs --run-dir (the same folder on every rank)")
        made.append(absolute(inherited))
        return
    if config.num_nodes > 1 and not launched_by_cluster():
        raise UsageError(not_here(config.num_nodes))
    open_dataset(config)  # bad metadata: at once
    check_init_source(config)  # a run to start from that does not fit
    check_devices(config)  # GPUs that this machine does not have
    check_writable(args.run_dir.parent if args.run_dir else runs_folder(args.runs_dir))  # before a long decode
    prepare_features(config, progress=_features_progress())  # audio that does not decode
    with _ctrl_c_held():  # the folder is made whole (config.yaml, status.json) before a Ctrl-C counts
        run_dir = create_run(config, args.runs_dir, args.name, folder=args.run_dir)
        me = Actor.local()  # the CLI acts for the machine's user: unrestricted, but owner and log say who
        RunFolder(run_dir).write_status(owner=me.name)
        record(run_dir.parent, me, "launch", run_dir)
        os.environ[RUN_DIR_ENV] = str(run_dir)
        made.append(run_dir)


@contextmanager
def _ctrl_c_held() -> Iterator[None]:
    """Hold a Ctrl-C until the block has run, then raise it."""
    held: list[int] = []
    previous = signal.getsignal(signal.SIGINT)
    if previous is not signal.default_int_handler or threading.current_thread() is not threading.main_thread():
        yield  # Ctrl-C is ignored or handled elsewhere: nothing to hold
        return
    signal.signal(signal.SIGINT, lambda signum, frame: held.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if held:
        raise KeyboardInterrupt


def _cmd_fit(args: argparse.Namespace) -> int:
    from autotag.training.distributed import is_rank_zero
    from autotag.training.fit import RunStopped, fit, fit_summary

    config = _config_from_args(args)
    made: list[Path] = []  # the run folder, once it exists: from then on a Ctrl-C stops that run
    try:
        _fit_run_dir(args, config, made)
        logging.getLogger("autotag").info("run folder: %s", made[0])
        metrics = fit(config, made[0])
    except (RunStopped, KeyboardInterrupt):
        if not made:
            raise  # nothing was written yet: `main` says "interrupted"
        _record_stop(made[0])
        print(_stopped_advice(made[0]), file=sys.stderr)
        return INTERRUPTED_EXIT
    if is_rank_zero():
        print(fit_summary(metrics), file=sys.stderr)
        print(made[0], flush=True)
    return 0


def _record_stop(run_dir: Path) -> None:
    """A run that a Ctrl-C ended before `fit` took charge of it (or while `fit` recorded its
    stop) is stopped, not left queued or running for a later reader to call crashed."""
    from autotag.store.job import RunState
    from autotag.store.run_folder import RunFolder
    from autotag.training.distributed import is_rank_zero

    run = RunFolder(run_dir)
    if not is_rank_zero():
        return  # rank 0 owns the folder
    state = run.read_status().state
    if state.stoppable:
        note = "cancelled before it started" if state is RunState.QUEUED else None
        run.write_status(state=RunState.STOPPED, ended=time.time(), note=note)


def _stopped_advice(run_dir: Path) -> str:
    """What a user can do with a run stopped in the foreground: resume it, or start it again."""
    from autotag.store.checkpoints import resumable_checkpoint
    from autotag.store.run_folder import RunError, RunFolder

    try:
        resumable_checkpoint(run_dir)
    except RunError:
        return (
            f"stopped before the first checkpoint, so there is nothing to resume; start it again with: "
            f"python -m autotag fit --config {RunFolder(run_dir).config}"
        )
    return f"stopped; continue with: python -m autotag runs resume {run_dir}"


def _cmd_prepare(args: argparse.Namespace) -> int:
    from autotag.data.prepare import prepare_features

    config = _config_from_args(args)
    report, _, cache = prepare_features(config, progress=_features_progress())
    for line in report.summary_lines():
        print(line, file=sys.stderr)
    print(cache.folder)
    return 0


def _features_progress() -> Callable[[int, int], None]:
    """A bar on a terminal; elsewhere (a log, CI) a line "features done/total" every 10 %."""
    from autotag.data.prepare import printed_progress

    return terminal_bar("features") or printed_progress(sys.stderr)


#: `tag --out`'s exit status when some files could not be tagged (each has a failed row).
SOME_FAILED_EXIT = 3
#: Options of `tag` that only a library (`--out`) takes.
_LIBRARY_OPTIONS = {
    "recursive": "--recursive",
    "resume": "--resume",
    "workers": "--workers",
    "formats": "--formats",
    "background": "--background",
}


def _cmd_tag(args: argparse.Namespace) -> int:
    from autotag.audio.decode import AudioError
    from autotag.runs.manager import resolve_run
    from autotag.serving.decide import decision_thresholds, tuned_thresholds
    from autotag.serving.render import render_predictions
    from autotag.serving.tagger import Tagger

    if args.out is not None:
        return _cmd_tag_library(args)
    given = [option for name, option in _LIBRARY_OPTIONS.items() if getattr(args, name) not in (None, False)]
    if given or args.quiet:
        raise UsageError(f"{', '.join(given or ['--quiet'])}: only with --out FILE (a library)")
    fmt = args.format or "json"
    if args.threshold is not None and fmt != "tags":
        raise UsageError("--threshold decides tags: use it with --format tags")
    run = resolve_run(args.run, args.runs_dir)
    warn_if_unfinished(run)
    tagger = Tagger.load(run)
    if tagger.note:
        print(f"autotag: note: {tagger.note}", file=sys.stderr)
    results, errors = {}, []
    for file in args.files:
        try:
            results[file] = tagger.predict(absolute(file))
        except AudioError as exc:
            errors.append(str(exc))
    if errors:
        raise UsageError("cannot tag:\n  " + "\n  ".join(errors))
    for file, prediction in results.items():
        if prediction.silent:
            print(f"autotag: note: {file} is silent throughout: no tags", file=sys.stderr)
    thresholds = decision_thresholds(tagger.labels, tuned_thresholds(run), args.threshold)
    print(render_predictions(results, fmt, args.taggram, thresholds))
    return 0


def _cmd_tag_library(args: argparse.Namespace) -> int:
    """`tag --out LIBRARY`: folders of files, a row each as it is done; see autotag.library."""
    from autotag.library.scan import FORMATS, check_inputs, parse_formats
    from autotag.library.store import check_out
    from autotag.library.tag import tag_into
    from autotag.runs.manager import resolve_run

    if args.format is not None or args.taggram:
        raise UsageError("--format and --taggram print to the terminal; with --out, its suffix chooses the format")
    formats = parse_formats(args.formats) if args.formats is not None else FORMATS
    inputs = check_inputs(args.files, args.recursive)
    out = absolute(args.out)
    if args.background:
        return _start_tag_job(args, out, inputs, formats)
    check_out(out, args.resume)  # all of it before the model loads: a bad argument writes nothing
    run = resolve_run(args.run, args.runs_dir)
    warn_if_unfinished(run)
    try:
        summary = tag_into(
            out,
            run,
            inputs,
            threshold=args.threshold,
            resume=args.resume,
            workers=args.workers,
            formats=formats,
            progress=(lambda total: terminal_bar("tagging", rate="files")) if _bar_wanted(args.quiet) else None,
            note=lambda line: print(f"autotag: note: {line}", file=sys.stderr),
        )
    except KeyboardInterrupt:
        print(f"autotag: interrupted; the files done are in {out}: add --resume to go on", file=sys.stderr)
        return INTERRUPTED_EXIT
    for line in summary.unreadable:
        print(f"autotag: warning: cannot read folder {line}", file=sys.stderr)
    for failure in summary.failures:
        print(f"autotag: failed: {failure}", file=sys.stderr)
    if summary.failed > len(summary.failures):
        print(
            f"autotag: ... and {summary.failed - len(summary.failures)} more: status 'failed' in {out.name}",
            file=sys.stderr,
        )
    if summary.failed or not args.quiet:
        print(f"autotag: {summary.line(out)}", file=sys.stderr)
    if not args.quiet:
        print(out)
    return SOME_FAILED_EXIT if summary.failed else 0


def _start_tag_job(args: argparse.Namespace, out: Path, inputs: list[Path], formats: tuple[str, ...]) -> int:
    """`tag --out OUT --background`: the Library page's Start (`library.job.start`)."""
    from autotag.library import job
    from autotag.store.run_folder import runs_folder

    request = job.TagRequest(args.run, [str(p) for p in inputs], list(formats), args.threshold, args.workers)
    job.start(out, request, resume=args.resume, runs_dir=runs_folder(args.runs_dir))
    print(f"autotag: tagging into {out} in the background; `library status {out}` follows it", file=sys.stderr)
    print(job.LibraryJob(out).path)
    return 0


def _bar_wanted(quiet: bool) -> bool:
    """A progress bar is drawn on a terminal unless --quiet (the files are counted for it first)."""
    return not quiet and sys.stderr.isatty()


def _cmd_evaluate(args: argparse.Namespace) -> int:
    import json

    from autotag.runs.manager import resolve_run
    from autotag.serving.evaluate import evaluate_run

    run = resolve_run(args.run, args.runs_dir)
    warn_if_unfinished(run)
    print(json.dumps(evaluate_run(run, args.data, args.split, args.data_format), indent=2))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from autotag.runs.manager import resolve_run
    from autotag.serving.export import export_run

    run = resolve_run(args.run, args.runs_dir)
    warn_if_unfinished(run)
    try:
        path, diff = export_run(run, args.format, args.out, args.check or None)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    print(f"exported; max abs difference to the PyTorch model: {diff:.2e}", file=sys.stderr)
    print(path)
    return 0


#: Lines, and characters per line, of an error message printed: whatever a message quotes from
#: a hostile file (a path, a value), the terminal gets a readable error, not megabytes.
MESSAGE_LINES, LINE_CHARS = 25, 500


def _bounded(message: str) -> str:
    lines = [shorten(line, LINE_CHARS) for line in message.splitlines()[:MESSAGE_LINES]]
    more = message.count("\n") + 1 - len(lines)
    return "\n".join(lines + ([f"... and {more} more lines"] if more > 0 else []))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m autotag", description="Train and use music auto-tagging models.")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo-data", help="render the built-in demo data set (no download)")
    demo.add_argument("out", help="new folder to write")
    demo.add_argument("--clips", type=int, default=300, help="number of 10 s clips (default 300)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.add_argument(
        "--synthetic",
        action="store_true",
        help="synthetic tones instead of real instruments (the set made when FluidSynth is missing)",
    )
    demo.add_argument(
        "--soundfont",
        default=None,
        help="General MIDI .sf2 to render the instruments with (default FluidR3_GM; "
        "e.g. /usr/share/sounds/sf2/TimGM6mb.sf2 for sounds a demo model never heard)",
    )
    demo.set_defaults(func=_cmd_demo_data)

    fit = sub.add_parser("fit", help="train in the foreground; prints the run folder last")
    fit.add_argument(
        "--config", type=absolute, help="config.yaml to start from (e.g. of an earlier run); options override it"
    )
    add_runs_dir_option(fit, "where run folders go")
    fit.add_argument("--name", default=None, help="short name in the run folder's name")
    fit.add_argument(
        "--run-dir",
        type=absolute,
        default=None,
        help="exact new run folder instead of a generated name (needed under torchrun/SLURM)",
    )
    _add_config_options(fit)
    fit.set_defaults(func=_cmd_fit)

    prepare = sub.add_parser("prepare", help="decode a data set once into the feature cache (before a cluster job)")
    prepare.add_argument("--config", type=absolute, help="config.yaml to start from; options override it")
    _add_config_options(prepare)
    prepare.set_defaults(func=_cmd_prepare)

    tag = sub.add_parser(
        "tag",
        help="tag audio files with a run's best checkpoint, or folders of them into a library (--out)",
        description="Print the tags of audio files; or, with --out, tag files and folders into a library "
        "file (SQLite, CSV or JSON lines), a row per file as each is done, resumable.",
        epilog="Exit status: 0 when every file was tagged; 2 for bad arguments (nothing written); "
        "3 when some files could not be tagged (with --out: each has a row with status 'failed' and why); "
        "130 when interrupted (with --out, the rows written stay: --resume goes on).",
    )
    tag.add_argument("--run", required=True, help="run folder, or a run's name in the runs folder")
    add_runs_dir_option(tag, "where to look up a run name")
    tag.add_argument(
        "files", nargs="+", help="audio files (wav, flac, ogg, mp3); with --out and --recursive, folders too"
    )
    tag.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="json or csv: every tag's probability; tags: the tags each file gets (default json)",
    )
    tag.add_argument(
        "--threshold",
        type=_probability,
        default=None,
        help="with --format tags or --out: one cut-off for every tag (default: the run's tuned per-tag thresholds)",
    )
    tag.add_argument("--taggram", action="store_true", help="also print per-chunk scores over time")
    library = tag.add_argument_group("a library (--out)")
    library.add_argument(
        "--out",
        default=None,
        help="write a row per file here as it is done: .sqlite, .db or no suffix (SQLite, with embeddings), "
        ".csv or .jsonl; refused if it exists, unless --resume",
    )
    library.add_argument(
        "--recursive", "-r", action="store_true", help="tag the audio files in the folders given and their subfolders"
    )
    library.add_argument(
        "--resume",
        action="store_true",
        help="go on with an existing --out: skip files it holds as tagged with the same size and time; "
        "tag changed and failed ones again",
    )
    library.add_argument(
        "--workers",
        type=int_in(1, MAX_WORKERS),
        default=None,
        help="decoder processes (default: one per core, at most 4)",
    )
    library.add_argument(
        "--formats",
        default=None,
        help="suffixes of the files taken from folders, comma separated (default wav,flac,ogg,mp3); "
        "files named on the command line are tagged whatever their suffix",
    )
    library.add_argument(
        "--quiet", "-q", action="store_true", help="no progress bar or summary (failures are still listed)"
    )
    library.add_argument(
        "--background",
        action="store_true",
        help="tag in a process of its own and return at once, as the Library page does: "
        "`library status|stop|resume OUT` follow it (its files: OUT.tagging/)",
    )
    tag.set_defaults(func=_cmd_tag)

    evaluate = sub.add_parser("evaluate", help="score a run's best checkpoint on another data set's labels")
    evaluate.add_argument("run", help="run folder, or a run's name in the runs folder")
    add_runs_dir_option(evaluate, "where to look up a run name")
    evaluate.add_argument("--data", type=absolute, required=True, help="data set folder (any layout fit reads)")
    evaluate.add_argument("--split", choices=("train", "valid", "test"), default=None, help="only this split")
    evaluate.add_argument("--data-format", choices=field_choices("format"), default="auto", help="layout of --data")
    evaluate.set_defaults(func=_cmd_evaluate)

    export = sub.add_parser("export", help="export a run's best model (front end included)")
    export.add_argument("run", help="run folder, or a run's name in the runs folder")
    add_runs_dir_option(export, "where to look up a run name")
    export.add_argument("--format", choices=("torchscript", "onnx"), required=True)
    export.add_argument("--out", type=absolute, default=None, help="target file (default: RUN/export/model.pt|.onnx)")
    export.add_argument("--check", type=absolute, nargs="*", default=[], help="audio files to compare outputs on")
    export.set_defaults(func=_cmd_export)

    add_robustness_parser(sub)
    add_similar_parser(sub)
    add_library_parser(sub)
    add_pretrained_parser(sub)
    add_runs_parser(sub)
    add_sweep_parser(sub, _add_config_options)
    add_serve_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        setup_logging()
        code = args.func(args)
        sys.stdout.flush()  # a reader that went away shows here, where it is handled, not at exit
        return code
    except KeyboardInterrupt:
        # First: the next clause imports modules, which fails while a Ctrl-C has left one
        # (torch, say) half imported. A command that wrote something says so itself.
        print("autotag: interrupted", file=sys.stderr)
        return INTERRUPTED_EXIT
    except (AutotagError, FileExistsError) as exc:
        print(f"autotag: error: {_bounded(str(exc))}", file=sys.stderr)
        return USAGE_EXIT
    except BrokenPipeError:
        # The reader went away (`runs show RUN | head`): what it wanted was printed. Point
        # stdout at /dev/null so that the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return BROKEN_PIPE_EXIT


if __name__ == "__main__":
    sys.exit(main())
