"""Process facts through psutil: is a pid still our trainer, or dead, a zombie, or reused?

A pid alone proves nothing: after a crash the number can belong to another process.
We record the trainer's start time (psutil's `create_time()`) next to its pid and compare
both. psutil reads the same facts on Linux, macOS and Windows, so a laptop user gets run
states too; reading /proc by hand worked on Linux only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil

# A zombie has exited and only waits for its parent to collect the exit status; a dead
# process is on its way out. Neither is running any more.
_GONE = frozenset({psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD})

# psutil gives the same float for the same process (the kernel's start time, converted the
# same way each call), and JSON keeps a float's every bit. The tolerance only absorbs
# last-bit differences should another psutil version do that arithmetic in another order.
# It stays far below create_time's resolution (one clock tick, 0.01 s on Linux), which is
# what psutil itself relies on against pid reuse: a new process cannot take a dead one's pid
# within a tick. Deliberately strict, though create_time follows the system clock (on Linux
# it is the boot time + ticks), so stepping the clock by a second or more while a trainer
# runs makes it look like another process: a false "crashed" mislabels a run, while a false
# "alive" would let Stop signal a stranger's process group.
_SAME_START_S = 1e-3


def process_start_time(pid: int) -> float | None:
    """When `pid` started, in seconds since the epoch (psutil's `create_time()`).

    None when there is no such process or its start time cannot be read, so a caller
    records a pid without a start time rather than failing to launch.
    """
    if pid <= 0:
        return None
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def reap(pid: int) -> None:
    """Collect `pid`'s exit status if it is our child, so it does not linger as a zombie.

    psutil only observes processes; collecting a child's exit status is its parent's job.
    """
    if sys.platform == "win32":
        return  # Windows has no zombies, and its os.waitpid takes a process handle, not a pid
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass  # not our child: its own parent reaps it
    except (OSError, OverflowError):
        pass  # no pid the system could have (a damaged status.json): nothing to collect


def recorded_alive(pid: int | None, start_time: float | None) -> bool:
    """Whether the process a status file records (its pid and start time) still runs.

    A pid without its start time proves nothing: every writer records both, and a status
    file is anyone's to edit (pid 1 always runs). Such a record counts as gone, so no
    state is derived, and no signal sent, on a pid's word alone.
    """
    return start_time is not None and is_alive(pid, start_time)


def is_alive(pid: int | None, start_time: float | None = None) -> bool:
    """True when `pid` runs, is not a zombie, and (if given) started at `start_time`.

    A process we may not inspect (psutil's AccessDenied) exists, so it counts as alive
    unless a start time we can read proves it is another process.
    """
    if not pid or pid <= 0:
        return False
    reap(pid)
    try:
        proc = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return False
    try:
        if proc.status() in _GONE:
            return False
    except psutil.NoSuchProcess:  # also psutil.ZombieProcess, where a platform raises that
        return False
    except psutil.AccessDenied:
        pass  # it exists; only its state is hidden from us
    if start_time is None:
        return True
    try:
        return _same_start(start_time, proc.create_time())
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


def _same_start(recorded: float, created: float) -> bool:
    """Whether a recorded start time is `created`, psutil's create time of the pid now.

    status.json files written before psutil hold the old unit: clock ticks since boot
    (field 22 of /proc/<pid>/stat, Linux only). No process running now started before
    boot, so a recorded value below the boot time is either such a tick count or a time
    from an earlier boot. On Linux it is read as ticks and converted the way psutil does
    (ticks / SC_CLK_TCK + boot time): a trainer started by the old code and still running
    is not declared crashed, and pid reuse is still caught. A time from an earlier boot,
    converted, lands months after this boot and matches no process's start by any
    realistic chance: not alive, as it should be. (An old tick count above the boot time,
    after about 197 days of uptime at 100 ticks a second, is read as a time and mismatches,
    so such a run shows as crashed.)
    """
    boot = psutil.boot_time()
    if recorded < boot and sys.platform.startswith("linux"):
        recorded = recorded / os.sysconf("SC_CLK_TCK") + boot
    return abs(created - recorded) < _SAME_START_S


def send_signal(pid: int, sig: signal.Signals, group: bool) -> None:
    """Signal a process, or the process group it leads (a trainer leads its own session);
    one that has already gone, or is not ours to signal, is left alone."""
    try:
        if group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def group_alive(pgid: int) -> bool:
    """Whether any process of group `pgid` still runs (zombies, which only wait to be reaped, do not)."""
    for proc in psutil.process_iter(["status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                return True
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return False


def start_detached(cmd: list[str], log: Path, cwd: Path, env: dict[str, str]) -> int:
    """Start one of autotag's background processes (a trainer, the warm trainer, a sweep driver, a
    report); its pid.

    It gets its own OS session, so it outlives the dashboard or shell that started it and
    Stop can signal its process group; its output goes to the end of `log`.
    """
    with log.open("ab") as out:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=cwd,
            env=env,
        )
    return proc.pid
