"""What ties a run to a sweep's trial: trial.json, and the trainer's report to its worker.

A trial of a sweep (`autotag.sweeps`) is an ordinary run whose folder also holds a
trial.json naming its Optuna study and trial, and where the sweep worker that owns it
listens (a loopback port and a token). After each validation the trainer sends its metric
there and the worker answers whether to prune (`autotag.sweeps.desk`). The trainer never
opens the study itself: importing Optuna's storage (SQLAlchemy, Alembic) cost every trial
about a second of its start, and a trainer holding no database connection is one less
writer for SQLite to serialise and one less connection for PostgreSQL to hold.
Nothing here imports torch, Lightning or Optuna.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from autotag.runs.folder import JsonFileError, load_json, typed_fields, write_json_atomic

Metric = Literal["val_loss", "val_roc_auc", "val_pr_auc"]
Port = Annotated[int, Field(ge=0, le=65535, strict=True)]
PrunerName = Literal["median", "hyperband", "none"]
#: Which way each metric is better.
DIRECTIONS: dict[str, str] = {"val_loss": "minimize", "val_roc_auc": "maximize", "val_pr_auc": "maximize"}
#: How long a trainer waits for its worker's answer: longer than the 60 s the worker may
#: wait for a locked SQLite file, so a report the study took is never logged as lost.
ANSWER_TIMEOUT_S = 90.0
#: Connection attempts per report, RETRY_S apart: a worker that dies is replaced by one
#: that takes its trials over (and writes its own port) within the loop's 5 s check.
CONNECT_TRIES, RETRY_S = 4, 2.0

log = logging.getLogger("autotag.training.fit")  # the trainer's train.log says what happened


@dataclass(frozen=True)
class TrialLink:
    """trial.json: which study and trial a run is, and where its worker takes its reports."""

    storage: str  # an SQLAlchemy URL (sqlite:///..., postgresql+psycopg://...)
    study: str
    trial_id: int
    number: int
    sweep: str  # the sweep folder
    metric: Metric
    pruner: PrunerName
    port: Port = 0  # the owning worker's report desk on 127.0.0.1; 0: none listens
    token: str = ""  # what the desk asks of a report, so no other local process can prune a trial

    def write(self, path: Path) -> None:
        write_json_atomic(path, asdict(self))

    @classmethod
    def read(cls, path: Path) -> TrialLink | None:
        """trial.json, or None when there is none or it is not as autotag writes it (a field
        missing, or of the wrong type: a port no socket can have would fail the trainer)."""
        try:
            data = load_json(path)
        except (OSError, JsonFileError):
            return None
        if not isinstance(data, dict):
            return None
        values, problems = typed_fields(cls, data)
        try:
            return None if problems else cls(**values)
        except TypeError:  # a field every trial has is missing
            return None


def report(path: Path, epoch: int, value: float) -> bool:
    """Send the trial's metric after `epoch` (1-based) to its worker; whether to prune.

    The link is read afresh for each try, so a worker that took the trial over from one that
    died (and wrote its own port) gets the report. With no worker answering after
    CONNECT_TRIES tries, the trial trains on and train.log says which epoch went unreported.
    """
    why = "no trial.json"
    for attempt in range(CONNECT_TRIES):
        link = TrialLink.read(path)
        if link is None or not link.port:
            why = why if link is None else "trial.json names no worker"
            break
        if attempt:
            time.sleep(RETRY_S)  # a worker that takes over from a dead one writes its port within 5 s
            link = TrialLink.read(path) or link
        try:
            conn = socket.create_connection(("127.0.0.1", link.port), timeout=ANSWER_TIMEOUT_S)
        except OSError as exc:
            why = f"no worker at port {link.port}: {exc.strerror or exc}"
            continue
        try:
            answer = _ask(conn, link, epoch, value)
        except (OSError, ValueError) as exc:
            why = f"{type(exc).__name__}: {exc}"
            break
        if "error" in answer:
            why = str(answer["error"])
            break
        return bool(answer.get("prune"))
    log.warning("epoch %d's %.4f did not reach the sweep (%s); the trial trains on", epoch, value, why)
    return False


def _ask(conn: socket.socket, link: TrialLink, epoch: int, value: float) -> dict:
    request = {"token": link.token, "trial_id": link.trial_id, "epoch": epoch, "value": value}
    with conn:
        conn.sendall(json.dumps(request).encode() + b"\n")
        with conn.makefile("rb") as answer:
            line = answer.readline(4096)
    if not line:
        raise ValueError("the worker closed the connection without an answer")
    reply = json.loads(line)
    if not isinstance(reply, dict):
        raise ValueError(f"not an answer: {line[:80]!r}")
    return reply
