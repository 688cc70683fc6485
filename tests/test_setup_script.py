"""scripts/setup.sh's apt_install waits for another apt/dpkg instead of giving up (issue 23).

Holding the machine's real dpkg lock would stall everyone else's apt on a shared machine,
so the script is sourced (which only defines its functions) and run against a fake
`apt-get` earlier on PATH that records its arguments and, when told, fails as apt does
when another process holds a lock. The lock detection is checked on a lock this test holds
on a file of its own.
"""

from __future__ import annotations

import fcntl
import os
import re
import subprocess
from pathlib import Path

import pytest

SETUP = Path(__file__).parents[1] / "scripts" / "setup.sh"
LOCKED = "E: Could not get lock /var/lib/apt/lists/lock. It is held by process 4321 (apt-get)"
FAKE_APT = """#!/usr/bin/env bash
echo "$*" >> "$APT_LOG"
calls=$(wc -l < "$APT_LOG")
if (( calls <= ${FAKE_FAILS:-0} )); then echo "$FAKE_ERROR" >&2; exit 100; fi
"""


@pytest.fixture
def fake_apt(tmp_path: Path) -> Path:
    """A folder with `apt-get` (records, maybe fails) and `sudo` (runs its command: the test is not root)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "apt-get").write_text(FAKE_APT)
    (bin_dir / "sudo").write_text('#!/usr/bin/env bash\nexec "$@"\n')
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    return bin_dir


def _apt_install(
    fake_apt: Path, script: str = ":", machine_locks: bool = False, **env: str
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run apt_install against the fake apt-get.

    Args:
        machine_locks: Look at real locks for `apt_lock_held` (of `script`'s APT_LOCKS); else
            none is held: the machine's own dpkg lock is held exactly while unattended-upgrades runs.
    """
    log = fake_apt.parent / "apt.log"
    log.touch()
    unheld = "" if machine_locks else "apt_lock_held() { return 1; }; "
    run = subprocess.run(
        [
            "bash",
            "-c",
            f"source {SETUP}; APT_RETRY_S=0.05; {unheld}{script}; apt_install libfluidsynth3 timgm6mb-soundfont",
        ],
        env={**os.environ, "PATH": f"{fake_apt}:{os.environ['PATH']}", "APT_LOG": str(log), **env},
        capture_output=True,
        text=True,
        timeout=30,
    )
    return run, log.read_text().splitlines()


def test_update_and_install_wait_for_the_dpkg_lock(fake_apt: Path) -> None:
    run, calls = _apt_install(fake_apt)
    assert run.returncode == 0, run.stderr
    assert [re.sub(r"Timeout=\d+", "Timeout=N", c) for c in calls] == [
        "-o DPkg::Lock::Timeout=N update -qq",
        "-o DPkg::Lock::Timeout=N install -y -qq libfluidsynth3 timgm6mb-soundfont",
    ]
    assert all(590 <= int(re.search(r"Timeout=(\d+)", c)[1]) <= 600 for c in calls)
    assert run.stdout == ""  # no lock held: nothing said about waiting


def test_a_lock_held_by_another_apt_is_waited_for_and_said_once(fake_apt: Path) -> None:
    """apt-get update does not wait for the lists lock itself (apt 2.6): refused, it runs again."""
    run, calls = _apt_install(fake_apt, FAKE_FAILS="2", FAKE_ERROR=LOCKED)
    assert run.returncode == 0, run.stderr
    assert [c.split()[2] for c in calls] == ["update", "update", "update", "install"]
    assert run.stdout.splitlines() == [
        "setup: waiting up to 600 s for another apt/dpkg to finish (unattended-upgrades at boot?)"
    ]
    assert LOCKED not in run.stderr  # the refusals waited out are not shown


def test_another_failure_is_not_retried(fake_apt: Path) -> None:
    error = "E: Unable to locate package timgm6mb-soundfont"
    run, calls = _apt_install(fake_apt, FAKE_FAILS="1", FAKE_ERROR=error)
    assert run.returncode != 0 and len(calls) == 1
    assert run.stderr.strip() == error and run.stdout == ""


def test_the_wait_ends_at_its_time(fake_apt: Path) -> None:
    run, calls = _apt_install(fake_apt, "APT_WAIT_S=1", FAKE_FAILS="1000", FAKE_ERROR=LOCKED)
    assert run.returncode != 0 and run.stderr.strip() == LOCKED  # the last refusal, once
    assert calls and all(c.startswith("-o DPkg::Lock::Timeout=") and "update" in c for c in calls)


def test_a_held_lock_is_seen_in_proc_locks_and_said_before_apt_runs(fake_apt: Path, tmp_path: Path) -> None:
    lock = tmp_path / "lock-frontend"
    lock.touch()
    held = f"APT_LOCKS=({lock})"
    free = subprocess.run(["bash", "-c", f"source {SETUP}; {held}; apt_lock_held"], timeout=30)
    assert free.returncode == 1
    with lock.open("w") as fh:
        fcntl.lockf(fh, fcntl.LOCK_EX)  # an fcntl lock, as apt and dpkg take
        taken = subprocess.run(["bash", "-c", f"source {SETUP}; {held}; apt_lock_held"], timeout=30)
        run, calls = _apt_install(fake_apt, held, machine_locks=True)
    assert taken.returncode == 0
    assert run.returncode == 0 and run.stdout.startswith("setup: waiting up to 600 s") and len(calls) == 2
