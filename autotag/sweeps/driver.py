"""One sweep worker's loop: ask the study for trials, run each as a run, tell the study how it ended.

A sweep has one driver (started by `sweep`, the Sweep page or `sweep resume`) and any number
of extra workers (`sweep worker`, the tasks of a SLURM array) on the same study. Each keeps up
to `parallel` trials of its own going, each an ordinary run started through the runs layer's
launcher and queue (`autotag.runs.manager`), so a trial is a separate process that the Runs
page shows, stops and deletes like any run. The study's storage (SQLite in the sweep folder,
or PostgreSQL when workers on several machines share it) is the only truth about trials,
and only workers open it: after each validation a trial's trainer writes the epoch's metric
to its status.json and waits; its worker, which polls that file anyway, records the value in
the study, asks the pruner, and writes the verdict into the run folder (`autotag.training.trial`).

Counting: a sweep wants `trials` finished trials, complete or pruned. A trial that failed
(its config or its training raised) does not count, and another takes its place. A trial
whose process died is failed and retried as a new trial with the same parameters, so it is
never counted twice: a dead trainer shows as a "crashed" run; a dead worker on this machine
by its pid and start time, whereupon another worker here adopts its trials (their runs go
on); a dead worker elsewhere by its stale heartbeat (Optuna's `fail_stale_trials`).
Two workers may ask at the same moment for the last trial: the non-failed trials are
ranked by number, and a trial asked beyond the first `trials` of them fails at once as
over the budget, and its worker stops asking.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import socket
import threading
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autotag.access import Actor
from autotag.config import ConfigError, make_config
from autotag.runs import manager
from autotag.store.job import RunState
from autotag.store.procs import is_alive, process_start_time
from autotag.store.run_folder import RunFolder, RunStatus
from autotag.sweeps.folder import SweepFolder, SweepSpec
from autotag.sweeps.space import Space, config_reason, parse_space
from autotag.sweeps.study import HEARTBEAT_S, MAX_RETRIES, finished, open_study, trial_counts
from autotag.training.trial import TrialLink, Verdict

if TYPE_CHECKING:
    import optuna

log = logging.getLogger("autotag.sweeps")

#: Seconds between a worker's looks at its trials' status files (a trial's end is seen this late).
POLL_S = 0.25
#: The same while its trainers wait for verdicts (a sweep with a pruner): each validation
#: waits for the worker's next look, 0.11 s on average at POLL_S against 0.05 s at this
#: (tiny on the demo set, median pruner), for 0.3 ms of CPU a look per trial it watches
#: (0.6 % of a core).
JUDGE_POLL_S = 0.05
#: Seconds between a busy worker's questions to the study (takeovers of dead workers' trials).
BUSY_CHECK_S = 5.0
#: Configs in a row that the schema refuses (say hop_length > n_fft) before the sweep gives up.
MAX_INVALID = 25
#: Trials in a row whose training raised before the sweep gives up (a data set that broke, say).
MAX_FAILED = 3


class SweepFailed(RuntimeError):
    """The sweep cannot go on (its trials keep failing); the message, one line, says why."""


class SweepStopped(Exception):
    """Stop was asked for (sweep stop, SIGTERM, Ctrl-C)."""


@dataclass(frozen=True)
class WorkerId:
    """Which sweep worker process owns a trial: host, pid and start time, stored on the trial."""

    host: str
    pid: int
    start: float

    @classmethod
    def this(cls) -> WorkerId:
        return cls(socket.gethostname(), os.getpid(), process_start_time(os.getpid()) or 0.0)

    @classmethod
    def parse(cls, key: object) -> WorkerId | None:
        try:
            host, pid, start = str(key).rsplit(":", 2)
            return cls(host, int(pid), float(start))
        except ValueError:
            return None

    @property
    def key(self) -> str:
        return f"{self.host}:{self.pid}:{self.start}"

    def dead_here(self) -> bool:
        """A worker of this machine whose process is gone (of another machine: unknown, False)."""
        return self.host == socket.gethostname() and not is_alive(self.pid, self.start or None)


class SweepWorker:
    """One worker's state: the trials it owns, by number, with their trial ids and runs, and
    the last epoch of each that it judged."""

    def __init__(self, folder: SweepFolder, spec: SweepSpec, space: Space, study: optuna.Study, storage: Any) -> None:
        self.folder, self.spec, self.space, self.study, self.storage = folder, spec, space, study, storage
        self.me = WorkerId.this()
        # Trials are launched and stopped for whoever made the sweep (the audit log says so).
        self.actor = replace(Actor.local(via="sweep"), name=folder.read_status().owner or Actor.local().name)
        self.own: dict[int, tuple[int, Path]] = {}
        self.judged: dict[int, int] = {}  # trial number -> the last epoch whose report it judged
        self.invalid = self.failed = 0
        self._beaten = self._checked = 0.0

    def step(self) -> bool:
        """One poll. While all its trials train, a worker only reads their status files; the
        study is asked when one ended, when there is room, and every `BUSY_CHECK_S` (takeovers,
        heartbeats), so the driver costs the trainers next to it no CPU to speak of.

        Returns: whether the study was asked (its counts may have changed).
        """
        ended = self._finish()
        now = time.monotonic()
        if not ended and len(self.own) >= self.spec.parallel and now - self._checked < BUSY_CHECK_S:
            return False
        self._checked = now
        self._adopt()
        if now - self._beaten >= HEARTBEAT_S / 2:
            self._beaten = now
            for trial_id, _ in self.own.values():
                self.storage.record_heartbeat(trial_id)
            self._fail_stale()
        self._launch()
        return True

    def done(self) -> bool:
        return not self.own and finished(trial_counts(self.study)) >= self.spec.trials

    def _fail_stale(self) -> None:
        import optuna

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(self.study)

    # --- taking over the trials of a worker that died on this machine

    def _adopt(self) -> None:
        import optuna

        with self.folder.lock():  # two live workers here must not both take the same trial
            for trial in self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
                owner = WorkerId.parse(trial.user_attrs.get("worker"))
                if trial.number in self.own or owner is None or not owner.dead_here():
                    continue
                run = trial.user_attrs.get("run") or self._find_run(trial._trial_id)
                if run is None:
                    self._retry(trial._trial_id, "its worker died before its run was made")
                    continue
                self.storage.set_trial_user_attr(trial._trial_id, "worker", self.me.key)
                self.storage.record_heartbeat(trial._trial_id)
                self.own[trial.number] = (trial._trial_id, Path(run))  # its trainer's next report is judged here
                log.info("trial %d: taken over from a worker that died (run %s)", trial.number, Path(run).name)

    def _find_run(self, trial_id: int) -> str | None:
        """The run of a trial whose worker died between launching it and recording it."""
        for info in manager.list_runs(self.spec.runs_dir):
            link = TrialLink.read(RunFolder(info.path).trial)
            if link and link.sweep == str(self.folder.path) and link.trial_id == trial_id:
                return str(info.path)
        return None

    # --- telling the study how trials ended

    def _finish(self) -> bool:
        """Tell the study about this worker's trials whose runs ended; whether any did."""
        ended = False
        for number, (trial_id, run) in list(self.own.items()):
            if not RunFolder(run).is_run:  # deleted (stopped first) from the Runs page or by hand
                del self.own[number]
                ended = True
                self.storage.set_trial_user_attr(trial_id, "note", "its run was deleted")
                self._tell(number, state="FAIL")
                continue
            status = RunFolder(run).read_status()
            state = manager.derive_state(run, status)
            self._judge(number, trial_id, status, answer=not state.final)
            if not state.final:
                continue
            del self.own[number]
            self.judged.pop(number, None)
            ended = True
            status = RunFolder(run).read_status()  # as the trainer ended it (derive_state may have read a newer one)
            if state is RunState.COMPLETED:
                self._tell_value(number, trial_id, status.best_val_metrics.get(self.spec.metric))
            elif state is RunState.PRUNED:
                self._tell(number, state="PRUNED")
                log.info("trial %d: pruned (%s)", number, status.phase)
            elif state is RunState.CRASHED:
                self._retry(trial_id, f"its trainer died ({run.name})")
            elif state is RunState.STOPPED:
                self.storage.set_trial_user_attr(trial_id, "note", "its run was stopped by hand")
                self._tell(number, state="FAIL")
            else:
                self.storage.set_trial_user_attr(trial_id, "error", status.error or f"its run is {state}")
                self._tell(number, state="FAIL")
                self.failed += 1
                if self.failed >= MAX_FAILED:
                    last = "; ".join(line.strip() for line in (status.error or "").splitlines() if line.strip())
                    raise SweepFailed(f"{self.failed} trials in a row failed; the last ({run.name}): {last}")
        return ended

    def _judge(self, number: int, trial_id: int, status: RunStatus, answer: bool) -> None:
        """Record the trial's newest validation in the study; and, while its trainer waits
        (`answer`), write the pruner's verdict into its run folder.

        A value that could not be recorded (the trial was failed meanwhile: a stale
        heartbeat) gets the verdict "go on": the trainer must hear, not wait.
        """
        import optuna

        epoch = status.validated_epoch
        if epoch is None or epoch <= self.judged.get(number, 0):
            return
        self.judged[number] = epoch
        value = status.last_metrics.get(self.spec.metric)
        if value is None:  # n/a: the trainer does not wait for a verdict on it
            return
        trial = optuna.trial.Trial(self.study, trial_id)
        try:
            with warnings.catch_warnings():  # a worker that took the trial over may judge an epoch again
                warnings.filterwarnings("ignore", "The reported value is ignored")
                trial.report(value, step=epoch)
            prune = answer and bool(trial.should_prune())  # a numpy bool from some pruners
        except optuna.exceptions.UpdateFinishedTrialError as exc:
            log.warning("trial %d: its epoch %d was not recorded: %s", number, epoch, exc)
            prune = False
        if answer:
            Verdict(epoch, prune).write(RunFolder(self.own[number][1]))

    def _tell_value(self, number: int, trial_id: int, value: float | None) -> None:
        if value is None or not math.isfinite(value):
            self.storage.set_trial_user_attr(trial_id, "error", f"the run ended without a finite {self.spec.metric}")
            self._tell(number, state="FAIL")
            return
        self.failed = 0
        self._tell(number, values=value)
        log.info("trial %d: %s %.4f", number, self.spec.metric, value)

    def _tell(self, number: int, values: float | None = None, state: str | None = None) -> None:
        import optuna

        self.study.tell(
            number,
            values,
            state=optuna.trial.TrialState[state] if state else None,
            skip_if_finished=True,  # another worker may have told it (after a takeover)
        )

    def _retry(self, trial_id: int, why: str) -> None:
        """Fail the trial and queue its parameters again (up to MAX_RETRIES times)."""
        import optuna

        self.storage.set_trial_user_attr(trial_id, "error", why)
        try:
            self.storage.set_trial_state_values(trial_id, state=optuna.trial.TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            return  # another worker got there first
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.RetryHeartbeatStaleTrialCallback(MAX_RETRIES)(self.study, self.storage.get_trial(trial_id))
        log.info("trial %d failed (%s); its parameters run again", self.storage.get_trial(trial_id).number, why)

    # --- starting trials

    def _room(self) -> bool:
        import optuna

        trials = self.study.get_trials(deepcopy=False)
        live = [t for t in trials if t.state != optuna.trial.TrialState.FAIL]
        return len(live) < self.spec.trials or any(t.state == optuna.trial.TrialState.WAITING for t in trials)

    def _rank(self, number: int) -> int:
        import optuna

        live = sorted(
            t.number for t in self.study.get_trials(deepcopy=False) if t.state != optuna.trial.TrialState.FAIL
        )
        return live.index(number)

    def _launch(self) -> None:
        while len(self.own) < self.spec.parallel and self._room():
            with warnings.catch_warnings():  # this loop records the heartbeats itself, as `optimize` would
                warnings.filterwarnings("ignore", "Heartbeat of storage is supposed to be used with Study.optimize")
                trial = self.study.ask()
            self.storage.record_heartbeat(trial._trial_id)
            trial.set_user_attr("worker", self.me.key)
            if self._rank(trial.number) >= self.spec.trials:
                trial.set_user_attr("note", "not run: the sweep already had its trials")
                self._tell(trial.number, state="FAIL")
                return
            values = self.space.sample(trial)
            try:
                config = make_config(**self.spec.fixed, **values)
            except ConfigError as exc:
                trial.set_user_attr("error", str(exc))
                self._tell(trial.number, state="FAIL")
                self.invalid += 1
                if self.invalid >= MAX_INVALID:
                    raise SweepFailed(
                        f"{self.invalid} configs in a row were invalid; the last: {config_reason(exc)}"
                    ) from None
                continue
            self.invalid = 0
            link = TrialLink(
                storage=self.folder.storage_url(self.spec),
                study=self.spec.study,
                trial_id=trial._trial_id,
                number=trial.number,
                sweep=str(self.folder.path),
                metric=self.spec.metric,
                pruner=self.spec.pruner,
            )
            run = manager.launch(
                config,
                self.spec.runs_dir,
                name=f"{self.folder.label}-t{trial.number:03d}",
                trial=link,
                actor=self.actor,  # a trial belongs to whoever made the sweep
            )
            trial.set_user_attr("run", str(run))
            self.own[trial.number] = (trial._trial_id, run)
            shown = ", ".join(f"{k}={v}" for k, v in values.items())
            log.info("trial %d: %s -> %s", trial.number, shown, run.name)

    # --- stopping

    def release(self) -> None:
        """Stop this worker's trials and queue their parameters again, for `sweep resume`."""
        self._finish()
        for _number, (trial_id, run) in list(self.own.items()):
            if manager.derive_state(run).stoppable:
                manager.stop(run, actor=self.actor)
            self._retry(trial_id, "the sweep was stopped")
        self.own.clear()


def drive(folder: SweepFolder, main: bool = True) -> RunState:
    """Run the sweep's loop in this process until its trials are done or it is stopped.

    Args:
        main: This is the sweep's driver: its pid in status.json says whether the sweep
            runs. Extra workers keep the trial counts there fresh; a sweep of workers alone
            (a SLURM array) is "running" while they write, and "crashed" a minute after.

    Returns: completed or stopped.

    Raises:
        SweepFailed: too many invalid configs or failed trials in a row.
    """
    spec = folder.spec()
    space = parse_space(spec.space, spec.fixed)
    study, storage = open_study(folder, spec, space)
    poll_s = POLL_S if spec.pruner == "none" else JUDGE_POLL_S
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    me = WorkerId.this()
    if main:
        folder.write_status(
            state=RunState.RUNNING, pid=me.pid, pid_start=me.start, host=me.host, started=time.time(), ended=None
        )
    elif folder.read_status().state is RunState.QUEUED:  # workers alone (a SLURM array): no driver's pid
        folder.write_status(state=RunState.RUNNING, started=time.time())
    worker = SweepWorker(folder, spec, space, study, storage)
    written = 0.0
    try:
        while True:
            if worker.done():
                break
            if stop.is_set() or folder.stop_request.exists():
                raise SweepStopped
            if worker.step() or time.monotonic() - written >= BUSY_CHECK_S:
                if worker.done():  # the last trial just ended: no poll's wait before saying so
                    break
                folder.write_status(counts=trial_counts(study))  # workers without a driver live by these
                written = time.monotonic()
            stop.wait(poll_s)
    except (SweepStopped, KeyboardInterrupt):
        worker.release()
        if main:
            folder.write_status(state=RunState.STOPPED, ended=time.time(), counts=trial_counts(study))
        log.info("sweep stopped; `python -m autotag sweep resume %s` goes on", folder.path)
        return RunState.STOPPED
    except BaseException as exc:
        if main:
            folder.write_status(state=RunState.FAILED, ended=time.time(), error=f"{type(exc).__name__}: {exc}")
        raise
    folder.write_status(state=RunState.COMPLETED, ended=time.time(), counts=trial_counts(study))
    return RunState.COMPLETED


def release_dead(folder: SweepFolder) -> None:
    """Stop the trials of this machine's workers that died (a killed driver): their runs go
    on training without a driver, and their parameters must run again on resume."""
    spec = folder.spec()
    space = parse_space(spec.space, spec.fixed)
    study, storage = open_study(folder, spec, space)
    worker = SweepWorker(folder, spec, space, study, storage)
    worker._adopt()
    worker.release()
    if folder.read_status().state is not RunState.COMPLETED:
        folder.write_status(counts=trial_counts(study))


def main(argv: list[str] | None = None) -> int:
    """`python -m autotag.sweeps.driver SWEEP [--worker]`: a background driver or worker."""
    import argparse

    from autotag.logs import setup_logging

    parser = argparse.ArgumentParser(prog=f"python -m {__name__}")
    parser.add_argument("sweep")
    parser.add_argument("--worker", action="store_true", help="an extra worker: leave status.json to the driver")
    args = parser.parse_args(argv)
    setup_logging()
    logging.getLogger("autotag").setLevel(logging.INFO)
    try:
        drive(SweepFolder(Path(args.sweep).resolve()), main=not args.worker)
    except SweepFailed as exc:  # status.json has it too; sweep.log gets the line, not a traceback
        log.error("sweep failed: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
