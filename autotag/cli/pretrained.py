"""`python -m autotag pretrained list|get`: the published taggers, and importing one as a run."""

from __future__ import annotations

import argparse
import os
import sys

from autotag.cli.progress import terminal_bar
from autotag.cli.runs import add_runs_dir_option
from autotag.paths import absolute
from autotag.pretrained.catalogue import Published


def _where(entry: Published, imported: set[str]) -> str:
    """Where a copy is here: an imported run, the mirror, the download cache, or nowhere yet."""
    from autotag.pretrained.fetch import MIRROR_ENV, cache_dir

    if entry.name in imported:
        return "imported"
    mirror = os.environ.get(MIRROR_ENV)
    if mirror and (absolute(mirror) / entry.file).is_file():
        return "mirror"
    return "cached" if (cache_dir() / entry.file).is_file() else "download"


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _cmd_list(args: argparse.Namespace) -> int:
    from autotag.pretrained.catalogue import CATALOGUE
    from autotag.runs.manager import list_runs

    imported = {r.status.published for r in list_runs(args.runs_dir) if r.status.published}  # one listing

    head = f"{'name':<16} {'network':<8} {'trained on':<44} {'tags':>4} {'ROC-AUC':>7} {'PR-AUC':>7} {'MB':>5}"
    print(f"{head} licence here")
    for entry in CATALOGUE.values():
        print(
            f"{entry.name:<16} {entry.network:<8} {entry.trained_on:<44} {len(entry.tags):>4} "
            f"{_score(entry.roc_auc):>7} {_score(entry.pr_auc):>7} {entry.size / 1e6:>5.1f} "
            f"{entry.licence.split()[0]:<7} {_where(entry, imported)}"
        )
    print(
        "scores: the authors', on their own test split (not comparable to runs trained here); "
        "credit: Won et al. 2020, github.com/minzwon/sota-music-tagging-models",
        file=sys.stderr,
    )
    return 0


def _cmd_get(args: argparse.Namespace) -> int:
    from autotag.pretrained.importer import get

    bar = terminal_bar(f"getting {args.name}", count=lambda n: f"{n / 1e6:.1f} MB")
    print(get(args.name, args.from_file, args.runs_dir, progress=bar))
    return 0


def add_pretrained_parser(sub: argparse._SubParsersAction) -> None:
    pretrained = sub.add_parser("pretrained", help="published taggers: list them, import one as a run")
    add_runs_dir_option(pretrained, "runs folder")
    cmds = pretrained.add_subparsers(dest="pretrained_command", required=True)
    p = cmds.add_parser("list", help="the catalogue: network, data, tags, published scores, size, where a copy is")
    add_runs_dir_option(p, "runs folder", top_level=False)
    p.set_defaults(func=_cmd_list)
    p = cmds.add_parser("get", help="import a published tagger as a completed run; prints its folder last")
    p.add_argument("name", help="a name from `pretrained list` (e.g. mtat-fcn)")
    p.add_argument(
        "--from",
        dest="from_file",
        type=absolute,
        default=None,
        help="the model's file (default: mirror, cache, download)",
    )
    add_runs_dir_option(p, "where the run goes", top_level=False)
    p.set_defaults(func=_cmd_get)
