"""`autotag serve`: a run's tagger over HTTP (`autotag.serving.http`), on uvicorn.

Loopback by default. Bound to any other address the API is reachable from other machines,
so it starts only with a bearer token read from `--token-file` (a file, not an argument:
a command line is visible to every user of the machine in `ps`).
"""

from __future__ import annotations

import argparse
import ipaddress
import socket
import sys
from pathlib import Path

from autotag.cli.runs import add_runs_dir_option, warn_if_unfinished
from autotag.errors import UsageError
from autotag.paths import absolute

#: The longest token file read (a token is a line; a bigger file is the wrong file).
TOKEN_BYTES = 4096


def add_serve_parser(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser("serve", help="serve a run's tagger over HTTP (POST /v1/tag; docs at /docs)")
    serve.add_argument("--run", required=True, help="run folder, or a run's name in the runs folder")
    add_runs_dir_option(serve, "where to look up a run name")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine)")
    serve.add_argument("--port", type=_port, default=8000, help="port (default 8000)")
    serve.add_argument(
        "--token-file",
        type=absolute,
        default=None,
        help="a file holding the bearer token clients must send; required when --host is not loopback",
    )
    serve.set_defaults(func=_cmd_serve)


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (1-65535)")
    return int(text)


def is_loopback(host: str) -> bool:
    """Whether `host` is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_token(path: Path) -> str:
    """The token in `path`: its one line, stripped.

    Raises:
        UsageError: unreadable, too big, empty, or more than one line.
    """
    try:
        with path.open("rb") as fh:
            data = fh.read(TOKEN_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"--token-file {path}: {exc.strerror or exc}") from None
    if len(data) > TOKEN_BYTES:
        raise UsageError(f"--token-file {path}: larger than {TOKEN_BYTES} bytes; a token is one line")
    try:
        token = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise UsageError(f"--token-file {path}: not UTF-8 text") from None
    if not token or "\n" in token or " " in token:
        raise UsageError(f"--token-file {path}: it must hold one token on one line, without spaces")
    return token


def _check_port_free(host: str, port: int) -> None:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UsageError(f"--host {host}: {exc.strerror}") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def _cmd_serve(args: argparse.Namespace) -> int:
    token = read_token(args.token_file) if args.token_file else None
    if token is None and not is_loopback(args.host):
        raise UsageError(
            f"--host {args.host} makes the API reachable from other machines: give --token-file with a bearer token"
        )
    _check_port_free(args.host, args.port)

    import uvicorn

    from autotag.runs.manager import resolve_run
    from autotag.serving.http import create_app

    run = resolve_run(args.run, args.runs_dir)
    warn_if_unfinished(run)
    app = create_app(run, token=token)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"autotag: serving {run.name} at http://{shown}:{args.port} (docs at /docs; Ctrl-C stops)", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0
