"""Process facts: a pid counts as our trainer only while it runs, is no zombie, and started when recorded.

test_manager covers a reaped child of ours and a reused pid through `derive_state`;
test_faults a trainer group killed by Stop. These check procs itself.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from autotag.store import procs
from autotag.store.procs import is_alive, process_start_time

SLEEPER = [sys.executable, "-c", "import time; time.sleep(600)"]

# Starts a grandchild that exits at once and is never reaped: a zombie that is not our child.
ZOMBIE_MAKER = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "pass"])
print(child.pid, flush=True)
time.sleep(600)
"""

# A group leader with one member, as a trainer and its DataLoader worker.
GROUP = """
import subprocess, sys, time
worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print(worker.pid, flush=True)
time.sleep(600)
"""


def wait_until(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.fixture
def sleeper():
    proc = subprocess.Popen(SLEEPER)
    yield proc
    proc.kill()
    proc.wait()


def test_a_live_child_is_alive_with_its_start_time(sleeper: subprocess.Popen) -> None:
    start = process_start_time(sleeper.pid)
    assert isinstance(start, float) and abs(start - time.time()) < 60
    assert start == psutil.Process(sleeper.pid).create_time()
    assert is_alive(sleeper.pid) and is_alive(sleeper.pid, start)
    # status.json keeps the value through JSON; it still names the same process.
    assert is_alive(sleeper.pid, json.loads(json.dumps({"pid_start": start}))["pid_start"])
    assert not is_alive(sleeper.pid, start + 0.5)  # the pid, but another process: reused


def test_no_pid_and_impossible_pids_are_not_alive() -> None:
    for pid in (None, 0, -1, -12345, 2**40):
        assert not is_alive(pid)
        assert not is_alive(pid, 1.0)
    for pid in (0, -1, 2**40):
        assert process_start_time(pid) is None


def test_an_exited_child_is_reaped_and_has_no_start_time() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    start = process_start_time(child.pid)
    assert wait_until(lambda: psutil.Process(child.pid).status() == psutil.STATUS_ZOMBIE)
    assert not is_alive(child.pid, start)
    with pytest.raises(ChildProcessError):  # is_alive collected our zombie child
        os.waitpid(child.pid, os.WNOHANG)
    assert process_start_time(child.pid) is None


def test_a_zombie_we_cannot_reap_is_not_alive() -> None:
    parent = subprocess.Popen([sys.executable, "-c", ZOMBIE_MAKER], stdout=subprocess.PIPE, text=True)
    try:
        zombie = int(parent.stdout.readline())
        assert wait_until(lambda: psutil.Process(zombie).status() == psutil.STATUS_ZOMBIE)
        assert not is_alive(zombie)
        assert psutil.Process(zombie).status() == psutil.STATUS_ZOMBIE  # still there: not ours to reap
    finally:
        parent.kill()
        parent.wait()


@pytest.mark.skipif(sys.platform == "win32", reason="process groups are POSIX")
def test_a_process_group_killed_with_killpg_is_dead() -> None:
    leader = subprocess.Popen([sys.executable, "-c", GROUP], stdout=subprocess.PIPE, text=True, start_new_session=True)
    worker = int(leader.stdout.readline())
    start, worker_start = process_start_time(leader.pid), process_start_time(worker)
    assert is_alive(leader.pid, start) and is_alive(worker, worker_start)
    os.killpg(leader.pid, signal.SIGKILL)  # the leader's pgid is its pid
    # The leader is our child (is_alive reaps it); the worker, orphaned, may linger as a
    # zombie where nothing reaps orphans: both are dead.
    assert wait_until(lambda: not is_alive(leader.pid, start))
    assert wait_until(lambda: not is_alive(worker, worker_start))
    leader.stdout.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the old unit came from Linux's /proc")
def test_an_old_clock_tick_start_time_still_identifies_the_process(sleeper: subprocess.Popen) -> None:
    # Before psutil, status.json held field 22 of /proc/<pid>/stat: clock ticks since boot.
    stat = Path(f"/proc/{sleeper.pid}/stat").read_text()
    ticks = int(stat[stat.rfind(")") + 2 :].split()[19])
    assert 0 < ticks < psutil.boot_time()
    assert is_alive(sleeper.pid, ticks)  # a run started by the old code is not declared crashed
    assert not is_alive(sleeper.pid, ticks - os.sysconf("SC_CLK_TCK"))  # a second off: pid reused


def test_a_process_we_may_not_inspect_exists(monkeypatch: pytest.MonkeyPatch, sleeper: subprocess.Popen) -> None:
    start = process_start_time(sleeper.pid)

    class Hidden(psutil.Process):
        def status(self) -> str:
            raise psutil.AccessDenied(self.pid)

    monkeypatch.setattr(procs.psutil, "Process", Hidden)
    assert is_alive(sleeper.pid, start)
    assert not is_alive(sleeper.pid, start - 1)  # its readable start time still proves reuse

    class Secret(Hidden):
        def create_time(self) -> float:
            raise psutil.AccessDenied(self.pid)

    monkeypatch.setattr(procs.psutil, "Process", Secret)
    assert is_alive(sleeper.pid, start - 1)  # nothing proves it is another process


def test_a_process_group_is_alive_until_its_last_member_is_gone() -> None:
    from autotag.store.procs import group_alive

    leader = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
    try:
        assert group_alive(leader.pid)
        os.killpg(leader.pid, signal.SIGKILL)
        leader.wait()  # reaped: a zombie would not count either
        assert not group_alive(leader.pid)
    finally:
        leader.kill()
