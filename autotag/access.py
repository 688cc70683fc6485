"""Who may do what to which run, and the audit log of what was done and refused.

A dashboard with login (`autotag.ui.auth`) acts for a person with a role: viewers look
and tag, trainers also launch and manage their own runs, sweeps and library jobs, admins
manage any.
The CLI and a dashboard without login act for the machine's OS user, unrestricted, as
before login existed. The checks live here and are made by the library functions that
change things (`runs.manager`, `sweeps.manager`, `serving.export`, `robustness.job`, `library.job`),
so a forged click from a viewer's session changes nothing: the function refuses, says
why, and the refusal is logged like every action.

The audit log is `<runs dir>/audit.jsonl`: one JSON object per line (time, who, role,
action, target, outcome, why, via, from), appended with O_APPEND so that concurrent writers
(the dashboard, trainers, the CLI) never interleave within a line.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Role = Literal["admin", "trainer", "viewer", "local", "none"]  # none: logged in, in no role list
#: Actions on a run or sweep that a viewer may not take, a trainer only on what it owns.
Action = Literal["launch", "stop", "resume", "delete", "export", "robustness", "sweep", "library"]
AUDIT_FILE = "audit.jsonl"
#: The most bytes of the audit log that the Runs page reads back (its last lines).
TAIL_BYTES = 256_000

log = logging.getLogger(__name__)


class AccessDenied(PermissionError):
    """An action the acting user's role does not allow; the message says who, what and why."""


@dataclass(frozen=True)
class Actor:
    """Who acts: a logged-in person (their e-mail) or the machine's OS user (`os:<name>`)."""

    name: str
    role: Role
    via: str = "cli"  # cli, dashboard: what the action came through
    origin: str = ""  # where from: the browser's address (Streamlit's, spoofable), or this host

    @classmethod
    def local(cls, via: str = "cli", origin: str | None = None) -> Actor:
        """The machine's own user: unrestricted (a laptop, a terminal on the training box)."""
        try:
            user = getpass.getuser()
        except (KeyError, OSError):  # no name for this uid (a container)
            user = str(os.getuid())
        return cls(f"os:{user}", "local", via, origin or socket.gethostname())


def allowed(actor: Actor, action: Action, owner: str | None) -> str | None:
    """None when `actor` may take `action` on something `owner` launched; else why not.

    Args:
        owner: Who launched the run or sweep (None for a new one, or one from before
            ownership was recorded, which only admins and local users may manage).
    """
    if actor.role in ("admin", "local"):
        return None
    if actor.role in ("viewer", "none"):
        return "viewers may look and tag, not change runs (ask an admin for the trainer role)"
    if action in ("launch", "sweep", "library") and owner is None:
        return None
    if owner == actor.name:
        return None
    return f"it was launched by {owner or 'someone before owners were recorded'}; trainers manage their own runs"


def check(actor: Actor | None, action: Action, target: Path, owner: str | None, runs_dir: Path) -> Actor:
    """The actor (local when None) if the action is allowed; else the refusal is logged and raised.

    Raises:
        AccessDenied: the actor's role does not allow it.
    """
    actor = actor or Actor.local()
    why = allowed(actor, action, owner)
    if why:
        record(runs_dir, actor, action, target, "refused", why)
        raise AccessDenied(f"{actor.name} ({actor.role}) may not {action} {target.name}: {why}")
    return actor


def record(
    runs_dir: Path, actor: Actor, action: str, target: Path | str | None, outcome: str = "ok", why: str = ""
) -> None:
    """Append one line to the audit log (a log that cannot be written is not a reason to fail)."""
    entry: dict[str, Any] = {
        "time": round(time.time(), 3),
        "who": actor.name,
        "role": actor.role,
        "action": action,
        "target": Path(target).name if isinstance(target, Path) else target,
        "outcome": outcome,
        "via": actor.via,
        "from": actor.origin,
    }
    if why:
        entry["why"] = why
    line = (json.dumps(entry) + "\n").encode()
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(runs_dir / AUDIT_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
    except OSError as exc:  # the action itself goes on: a full disk must not stop a Stop
        log.warning("the audit log %s cannot be written: %s", runs_dir / AUDIT_FILE, exc)


def read_log(runs_dir: Path, limit: int = 500) -> list[dict[str, Any]]:
    """The newest `limit` entries, newest first (from the last TAIL_BYTES of the file)."""
    path = runs_dir / AUDIT_FILE
    try:
        with path.open("rb") as fh:
            fh.seek(max(0, path.stat().st_size - TAIL_BYTES))
            data = fh.read()
    except OSError:
        return []
    return list(_entries(data.decode("utf-8", "replace").splitlines()[-limit:]))[::-1]


def _entries(lines: list[str]) -> Iterator[dict[str, Any]]:
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # the first line of a tail read mid-way, or a torn last line
        if isinstance(entry, dict):
            yield entry
