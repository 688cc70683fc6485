"""A sweep worker's report desk: its trials' trainers report here, and it answers prune or not.

Each worker listens on a loopback port of its own machine (its trials run there) with a
token that only its trials' trial.json files carry. A trainer sends one line per validation,
`{"token", "trial_id", "epoch", "value"}`; the desk records the value on the trial in the
study, asks the study's pruner as `Trial.should_prune` would, and answers `{"prune": bool}`
or `{"error": why}`. Reports are served on threads of their own, which take turns with
the worker's loop on the study (one lock), so a report waits at most for one step of the
loop (a launch: tenths of a second).
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import socketserver
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

log = logging.getLogger("autotag.sweeps")
#: How often the desk's loop looks for `close` (socketserver's default, 0.5 s, held every sweep's end).
SHUTDOWN_POLL_S = 0.05


class ReportDesk:
    """Takes trainers' reports for the trials of one worker's study (see the module's text)."""

    def __init__(self, study: optuna.Study, lock: threading.Lock) -> None:
        """Args: lock: held for every use of the study, here and in the worker's loop: Optuna's
        Hyperband pruner builds its brackets lazily, unguarded, and two threads building them
        at once double its budget."""
        self.study, self.lock = study, lock
        self.token = secrets.token_hex(16)
        desk = self

        class Handler(socketserver.StreamRequestHandler):
            timeout = 10  # a client that connects and says nothing holds no thread for long

            def handle(self) -> None:
                try:
                    line = self.rfile.readline(4096)
                except OSError:  # it said nothing within `timeout`, or went away: nobody to answer
                    return
                try:
                    answer = desk.answer(json.loads(line))
                except ValueError as exc:
                    answer = {"error": f"not a report: {exc}"}
                except Exception as exc:  # said to the trainer, logged here
                    log.exception("a report could not be answered")
                    answer = {"error": f"the worker failed: {type(exc).__name__}: {exc}"}
                try:
                    self.wfile.write(json.dumps(answer).encode() + b"\n")
                except OSError:
                    pass  # the trainer gave up waiting (it logs the epoch as unreported)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True

        self._server = Server(("127.0.0.1", 0), Handler)
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": SHUTDOWN_POLL_S},
            name="report-desk",
            daemon=True,
        )
        self._thread.start()

    def answer(self, request: Any) -> dict[str, Any]:
        """The answer to one report; a report that cannot be taken says why."""
        import optuna

        token = str(request.get("token")).encode() if isinstance(request, dict) else b""
        if not hmac.compare_digest(token, self.token.encode()):
            return {"error": "the report's token is not this worker's"}
        try:
            trial_id, epoch, value = int(request["trial_id"]), int(request["epoch"]), float(request["value"])
        except (KeyError, TypeError, ValueError) as exc:
            return {"error": f"not a report: {exc!r}"}
        trial = optuna.trial.Trial(self.study, trial_id)
        try:
            with self.lock:
                trial.report(value, step=epoch)
                prune = bool(trial.should_prune())  # a numpy bool from some pruners
        except Exception as exc:  # the trainer must hear why, not hang
            log.warning("trial id %d: its epoch %d report was not taken: %s", trial_id, epoch, exc)
            return {"error": f"{type(exc).__name__}: {exc}"}
        return {"prune": prune}

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
