"""`python -m autotag similar --library LIB FILE [--k 10] [--format text|json]`: tracks like FILE."""

from __future__ import annotations

import argparse
import json
import sys

from autotag.cli.args import int_in
from autotag.paths import absolute


def _cmd_similar(args: argparse.Namespace) -> int:
    from autotag.library.similar import find_similar

    found = find_similar(args.library, args.file, args.k)
    if not found.in_library:
        print(f"autotag: note: {args.file} is not in the library; embedded with its run", file=sys.stderr)
    if args.format == "json":
        rows = [{"path": n.path, "similarity": n.similarity, "tags": n.tags} for n in found.neighbours]
        print(json.dumps(rows, indent=2))
    else:
        for n in found.neighbours:
            print(f"{n.similarity:.4f}\t{n.path}\t{';'.join(n.tags)}")
    return 0


def add_similar_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "similar",
        help="the tracks of a library most like a file (cosine similarity of their embeddings)",
        description="List the tracks of a library (`tag --out lib.sqlite`) nearest to a file it holds, or to "
        "any audio file (scored first by the library's own run), by the cosine similarity of their embeddings: "
        "similarity, path and tags, nearest first.",
    )
    p.add_argument("--library", type=absolute, required=True, help="a library tagged by `tag --out` (SQLite)")
    p.add_argument("file", help="a file in the library, or any audio file (wav, flac, ogg, mp3)")
    p.add_argument("--k", type=int_in(1, 10_000), default=10, help="how many tracks (default 10)")
    p.add_argument("--format", choices=("text", "json"), default="text", help="text: tab-separated lines (default)")
    p.set_defaults(func=_cmd_similar)
