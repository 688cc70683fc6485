"""A pre-warmed trainer: torch and Lightning imported once, every launch forked from it.

Most of the time from Launch to the first point on the chart is a new trainer importing
torch and Lightning (about 4 s of 9 on a 2-core laptop). The dashboard therefore keeps
one process per runs folder that has done those imports and then waits. A launch drops
a request file into `<runs>/.warm/`; the process forks a child that becomes the run's
trainer exactly as `python -m autotag.runs.process exec RUN` would: its own session, its output
in train.log, the same command line for Lightning's DDP launcher to re-run.

Anything unusual (no warm process, another environment or code version, no answer
within a second) falls back to starting a fresh process, so a warm start is only ever
faster, never different. The warm process runs no torch code itself (no thread pools,
no CUDA context), which keeps forking it safe, and it exits when the dashboard that
started it is gone.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from autotag.store.files import write_json_atomic
from autotag.store.procs import is_alive, process_start_time, start_detached
from autotag.store.run_folder import RunFolder

#: The module whose `main` a trainer and the warm process run (named, not imported: it imports us).
PROCESS_MODULE = "autotag.runs.process"
WARM_DIR = ".warm"
INFO_FILE = "process.json"
#: How long a launch waits for the warm process to take its request before starting a fresh one.
CLAIM_TIMEOUT_S = 1.0
POLL_S = 0.02
#: How often the warm process checks that its dashboard still runs and it is still the one.
OWNER_CHECK_S = 1.0
PACKAGE = Path(__file__).resolve().parents[1]  # all of autotag/, its subpackages too
#: Prefixes of variables read while torch, Lightning and their libraries are imported.
IMPORT_TIME_VARIABLES = (
    "PYTHON",
    "LD_",
    "OMP_",
    "MKL_",
    "KMP_",
    "OPENBLAS_",
    "CUDA_",
    "TORCH",
    "PYTORCH_",
    "PL_",
    "LIGHTNING_",
)

log = logging.getLogger(__name__)


def enabled() -> bool:
    """`$AUTOTAG_WARM` (default 1); 0 turns warm starts off (e.g. to save its ~0.5 GB of memory)."""
    return os.environ.get("AUTOTAG_WARM", "1").strip() not in ("0", "false", "no", "")


def fingerprint(env: dict[str, str]) -> str:
    """What a forked trainer inherits from the warm process and cannot change: the
    interpreter, the code, and the variables that take effect when torch is imported.

    The rest of the environment is the launcher's own: the trainer sets it after the fork.
    """
    h = hashlib.sha256(sys.executable.encode())
    h.update(json.dumps(sorted((k, v) for k, v in env.items() if k.startswith(IMPORT_TIME_VARIABLES))).encode())
    for path in sorted(PACKAGE.rglob("*.py")):
        st = path.stat()
        h.update(f"{path.relative_to(PACKAGE)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def info(runs_dir: Path) -> dict:
    """The warm process's record (`pid`, `pid_start`, `fingerprint`, `ready`); {} when none."""
    try:
        return json.loads((runs_dir / WARM_DIR / INFO_FILE).read_text())
    except (OSError, ValueError):
        return {}


def _ready(runs_dir: Path, inherited: str) -> bool:
    record = info(runs_dir)
    alive = is_alive(record.get("pid"), record.get("pid_start"))
    return record.get("fingerprint") == inherited and bool(record.get("ready")) and alive


def ensure(runs_dir: Path, env: dict[str, str], cwd: Path) -> None:
    """Start the warm process of `runs_dir` unless a current one runs; cheap when it does."""
    if not enabled():
        return
    inherited = fingerprint(env)
    record = info(runs_dir)
    if is_alive(record.get("pid"), record.get("pid_start")):
        if record.get("fingerprint") == inherited:
            return
        os.kill(record["pid"], signal.SIGTERM)  # stale: other code or settings than launches now use
    folder = runs_dir / WARM_DIR
    try:
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o700)  # requests carry the launcher's environment, which may hold secrets
    except OSError as exc:  # a read-only runs folder: launches will say so; starts are just not warm
        log.warning("no pre-warmed trainer for %s: %s", runs_dir, exc)
        return
    cmd = [sys.executable, "-m", PROCESS_MODULE, "warm", str(runs_dir), "--owner", str(os.getpid())]
    pid = start_detached([*cmd, "--fingerprint", inherited], folder / "warm.log", cwd, env)
    write_json_atomic(folder / INFO_FILE, {"pid": pid, "pid_start": process_start_time(pid), "fingerprint": inherited})


def hand_over(run_dir: Path, resume_from: str | None, env: dict[str, str]) -> bool:
    """Ask the warm process to start `run_dir`; False when it cannot, and the caller must."""
    runs_dir = run_dir.parent
    if not enabled() or not _ready(runs_dir, fingerprint(env)):
        return False
    request = runs_dir / WARM_DIR / f"request-{run_dir.name}.json"
    write_json_atomic(request, {"run": str(run_dir), "resume": resume_from, "env": env})
    deadline = time.monotonic() + CLAIM_TIMEOUT_S
    while time.monotonic() < deadline:
        if not request.exists():
            return True  # claimed: the warm process renamed it and forks the trainer
        time.sleep(POLL_S)
    try:
        request.unlink()  # take it back; if that fails, the warm process claimed it just now
    except FileNotFoundError:
        return True
    return False


def serve(runs_dir: Path, owner: int, inherited: str, trainer: Callable[[list[str]], int]) -> None:
    """The warm process: import the training stack, then fork a trainer per request.

    Args:
        inherited: The `fingerprint` it was started for: what the trainers it forks inherit.
        trainer: The trainer process's entry (`autotag.runs.process.main`), called in each
            forked child with the `exec` arguments a fresh trainer would get.
    """
    import autotag.training.fit  # noqa: F401
    import autotag.training.trainer  # noqa: F401 - torch, Lightning, the TensorBoard logger
    from autotag.data import datamodule, prepare  # noqa: F401

    folder = runs_dir / WARM_DIR
    me = {"pid": os.getpid(), "pid_start": process_start_time(os.getpid()), "fingerprint": inherited}
    deadline = time.monotonic() + 10
    while info(runs_dir).get("pid") != me["pid"]:  # `ensure` records our pid once Popen returns
        if time.monotonic() > deadline:
            return  # another warm process took this runs folder over
        time.sleep(POLL_S)
    write_json_atomic(folder / INFO_FILE, {**me, "ready": True})
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # trainers are reaped by the kernel
    owner_start = process_start_time(owner)
    checked = 0.0
    while True:
        if time.monotonic() - checked >= OWNER_CHECK_S:  # not every poll: an idle loop stays cheap
            if not is_alive(owner, owner_start) or info(runs_dir).get("pid") != me["pid"]:
                return  # the dashboard is gone, or another warm process took over
            checked = time.monotonic()
        for request in sorted(folder.glob("request-*.json")):
            claimed = request.with_suffix(f".claimed-{os.getpid()}")
            try:
                os.rename(request, claimed)
            except FileNotFoundError:
                continue  # the launcher took it back
            job = json.loads(claimed.read_text())
            claimed.unlink()
            _fork_trainer(Path(job["run"]), job.get("resume"), job["env"], trainer)
        time.sleep(POLL_S)


def _fork_trainer(
    run_dir: Path, resume_from: str | None, env: dict[str, str], trainer: Callable[[list[str]], int]
) -> None:
    argv = ["exec", str(run_dir), *(["--resume", resume_from] if resume_from else [])]
    pid = os.fork()
    if pid:
        RunFolder(run_dir).write_status(pid=pid, pid_start=process_start_time(pid))
        return
    code = 1
    try:  # the child: never returns into the warm process's loop
        os.setsid()  # its own session and process group, like a fresh launch: Stop signals the group
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_DFL)
        log = os.open(RunFolder(run_dir).log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        os.environ.clear()
        os.environ.update(env)  # the launcher's environment, as a fresh process would get it
        sys.argv = [sys.argv[0], *argv]  # what Lightning's DDP launcher re-runs for the other ranks
        code = trainer(argv)
    except BaseException:
        traceback.print_exc()  # into train.log: a crash says why
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
