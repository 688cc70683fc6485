"""Shared fixtures: tiny synthetic audio and data sets built in tmp folders, nothing downloaded."""

from __future__ import annotations

import contextlib
import csv
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from autotag.config import TrainConfig, make_config


@pytest.fixture(scope="session")
def _step_times(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("estimate") / "step_times.json"


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, _step_times: Path) -> None:
    """Every test gets its own feature cache and runs folder, and no pre-warmed trainer.

    A warm trainer holds torch in memory (~0.5 GB) for as long as the process that asked
    for it lives; tests that want one turn it on themselves (tests/runs/test_warm.py).
    The Train page's timed training steps are a fact of the machine: one file for the
    session, so each page test does not time the default model again (seconds each).
    """
    from autotag.pretrained import fetch
    from autotag.training import estimate

    monkeypatch.setenv("AUTOTAG_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("AUTOTAG_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("AUTOTAG_WARM", "0")
    monkeypatch.delenv(fetch.MIRROR_ENV, raising=False)  # a test that wants the mirror says so
    monkeypatch.setattr(fetch, "cache_dir", lambda: tmp_path / "pretrained-cache")
    monkeypatch.setattr(estimate, "_cache_file", lambda: _step_times)


#: The published tagger weights: data for tests, never part of the repository (../shared/pretrained
#: beside a checkout, or wherever AUTOTAG_PRETRAINED_DIR says).
PUBLISHED_WEIGHTS = Path(__file__).resolve().parents[2] / "shared" / "pretrained"


def published_folder() -> Path | None:
    """The folder of published weights (the catalogue's files under their names), if this machine has it."""
    import os

    folder = Path(os.environ.get("AUTOTAG_PRETRAINED_DIR") or PUBLISHED_WEIGHTS).resolve()
    return folder if (folder / "mtat_fcn.pth").is_file() else None


@pytest.fixture(scope="session")
def published_or_none() -> Path | None:
    """`published_folder()` as the session started (tests remove AUTOTAG_PRETRAINED_DIR for themselves)."""
    return published_folder()


@pytest.fixture(scope="session")
def published_weights(published_or_none: Path | None) -> Path:
    """The folder of published weights, as a mirror; tests that need it skip, saying why, without it."""
    folder = published_or_none
    if folder is None:
        pytest.skip(f"the published weights are not in {PUBLISHED_WEIGHTS}: set AUTOTAG_PRETRAINED_DIR to their folder")
    return folder


@pytest.fixture(scope="session")
def instrument_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 clips of the real-instrument demo set (FluidSynth; ~15 s): what published models can hear."""
    from autotag.data.demo import make_demo_dataset

    return make_demo_dataset(tmp_path_factory.mktemp("instruments") / "demo", clips=60, seed=3)


def tone(seconds: float = 1.0, freq: float = 440.0, sr: int = 16000, channels: int = 1) -> np.ndarray:
    """A sine of `seconds` at `freq`, shape (samples, channels), float32 in [-0.5, 0.5]."""
    t = np.arange(int(seconds * sr)) / sr
    wave = (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.repeat(wave[:, None], channels, axis=1)


def write_csv_dataset(root: Path, rows: list[tuple[str, str, str | None]], seconds: float = 1.0) -> Path:
    """A plain-folder data set: rows are (path, tags joined by ';', split or None)."""
    root.mkdir(parents=True, exist_ok=True)
    with_split = any(r[2] is not None for r in rows)
    with (root / "tags.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "tags", *(["split"] if with_split else [])])
        for i, (path, tags, split) in enumerate(rows):
            file = root / path
            file.parent.mkdir(parents=True, exist_ok=True)
            if not file.exists():
                sf.write(file, tone(seconds, 200 + 40 * i), 16000)
            writer.writerow([path, tags, *([split] if with_split else [])])
    return root


@pytest.fixture
def small_csv_dataset(tmp_path: Path) -> Path:
    """12 one-second clips, tags a/b/c, explicit splits 8/2/2."""
    tags = ["a;b", "b", "a;c", "c", "a", "b;c", "a;b;c", "c", "a;b", "b;c", "a;c", "b"]
    splits = ["train"] * 8 + ["valid"] * 2 + ["test"] * 2
    rows = [(f"audio/{i:02d}.wav", t, s) for i, (t, s) in enumerate(zip(tags, splits))]
    return write_csv_dataset(tmp_path / "small", rows)


@pytest.fixture(scope="session")
def demo_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo generator's synthetic tones, 120 clips (shared by the slow end-to-end tests).

    Tones, not the instruments: 8 epochs of `tiny` learn them, so these tests check the
    pipeline, not how hard the real demo set is.
    """
    from autotag.data.demo import make_demo_dataset

    return make_demo_dataset(tmp_path_factory.mktemp("demo") / "demo", clips=120, seed=1, synthetic=True)


def tiny_config(data: Path, **overrides: object) -> TrainConfig:
    """The real config schema, shrunk for tests: tiny model, short chunks, few epochs.

    One chunk per clip and epoch (the default is 4): the process tests count epochs and kill
    trainers mid-run, and four chunks would make each of their fits four times longer.
    """
    values: dict = {"data": str(data), "model": "tiny", "max_epochs": 2, "batch_size": 4, "chunk_seconds": 0.5}
    values["chunks_per_clip"] = 1
    values.update(overrides)
    return make_config(**values)


@pytest.fixture(scope="session")
def trained_run(demo_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real `tiny` training run on the demo set, through the CLI (shared, read-only)."""
    import subprocess
    import sys

    base = tmp_path_factory.mktemp("trained")
    env = {**__import__("os").environ, "AUTOTAG_CACHE_DIR": str(base / "cache")}
    cmd = [
        sys.executable,
        "-m",
        "autotag",
        "fit",
        "--data",
        str(demo_dataset),
        "--model",
        "tiny",
        "--max-epochs",
        "8",
        "--batch-size",
        "16",
        "--runs-dir",
        str(base / "runs"),
        "--name",
        "e2e",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = Path(done.stdout.strip().splitlines()[-1])
    assert run_dir.is_dir(), done.stdout
    return run_dir


@contextlib.contextmanager
def paused(pid: int) -> Iterator[None]:
    """The process `pid` held still (SIGSTOP) for the block, then let go (SIGCONT).

    For a test that acts on work while it is still in progress: an idle machine tagged the
    rest of 40 files, or trained the last epochs of a run, between a test's look and its
    signal. A signal sent in the block waits for the let-go (SIGKILL does not); a held process
    is alive to `is_alive`, so a Stop that waits for its end must be let go first.
    """
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


def wait_until(what: str, predicate, timeout: float = 180):  # noqa: ANN001, ANN201 - () -> value or None
    """The first truthy value of `predicate()`, asked every 0.1 s; fails the test after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def wait_for_run(run: Path, predicate, timeout: float = 180) -> dict:  # noqa: ANN001 - status -> bool
    """Poll a run's derived state until `predicate(status)` holds; fail with its log if it never does."""
    import time

    from autotag.runs import manager
    from autotag.store.run_folder import RunFolder

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = manager.derive_state(run)  # may persist "crashed": read the status after it
        status = {**RunFolder(run).read_status().to_json(), "state": state}
        if predicate(status):
            return status
        time.sleep(0.05)
    raise AssertionError(f"timed out; status {RunFolder(run).read_status().to_json()}; log:\n{manager.log_tail(run)}")


ROOT = Path(__file__).resolve().parent.parent


def stop_trainers(runs_dir: Path) -> None:
    """End the trainers of runs a test started in `runs_dir` (and cancel its queued runs)."""
    from autotag.runs import manager

    for run in manager.list_runs(runs_dir):
        if run.state.stoppable:
            manager.stop(run.path, grace=5)


def shipped_env() -> dict[str, str]:
    """This process's environment without any AUTOTAG_* variable: the defaults as shipped."""
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("AUTOTAG_")}


@pytest.fixture(scope="session")
def shipped_clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh clone of this repository as a new user has it, set up by its own script.

    The files git would commit are copied (so the tests run the working tree), the
    project's .venv is linked in (its install stamps make `scripts/setup.sh` skip the
    install, as on a second run), and `scripts/setup.sh` then does what it does for a new
    user: it generates the built-in demo data set in `./data/demo`.
    """
    import hashlib
    import shutil
    import subprocess

    # The clone's set-up would reinstall an out-of-date .venv, and with it autotag from the
    # clone's path, which is deleted after the session: refuse before it can.
    want = hashlib.sha256((ROOT / "requirements.txt").read_bytes() * 2).hexdigest()  # scripts/setup.sh's stamp
    stamp = ROOT / ".venv" / ".installed-requirements"
    if not stamp.is_file() or stamp.read_text().strip() != want:
        pytest.fail(
            "the project's .venv is older than requirements.txt: run `bash scripts/test.sh` (or scripts/setup.sh)"
        )
    clone = tmp_path_factory.mktemp("clone") / "autotag"
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        if (ROOT / name).is_file():  # a file deleted in the working tree is not there
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, clone / name)
    (clone / ".venv").symlink_to(ROOT / ".venv")
    done = subprocess.run(
        ["bash", "scripts/setup.sh"], cwd=clone, env=shipped_env(), capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "installing" not in done.stdout, "the linked .venv should be up to date: " + done.stdout
    assert (clone / "data" / "demo" / "tags.csv").is_file(), done.stdout
    return clone


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL server for this test session (Debian's, which `scripts/setup.sh --dev`
    installs), on a free loopback port, as the `postgres` user when the tests run as root;
    stopped afterwards. Yields an SQLAlchemy URL of an empty database."""
    import glob
    import os
    import pwd
    import shutil
    import socket
    import subprocess
    import tempfile

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if not found:
        pytest.skip(
            "no PostgreSQL server binaries (/usr/lib/postgresql/*/bin): bash scripts/setup.sh --dev installs them"
        )
    bin_dir = Path(found[-1]).parent
    # Not under pytest's temporary folder: as root, that is closed to the postgres user.
    base = Path(tempfile.mkdtemp(prefix="autotag-postgres-"))
    data, sockets = base / "data", base / "sockets"
    sockets.mkdir()
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root: the server runs as Debian's postgres user
        user = pwd.getpwnam("postgres")
        for path in (base, sockets):
            os.chown(path, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
        if shutil.which("runuser") is None:
            pytest.skip("tests run as root, and there is no runuser to start PostgreSQL as its own user")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    def run(*cmd: str) -> None:
        done = subprocess.run([*as_user, *cmd], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{cmd[0]}: {done.stderr[-2000:]}"

    run(str(bin_dir / "initdb"), "-D", str(data), "--auth=trust", "-U", "autotag", "--no-sync")
    options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
    run(str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(base / "server.log"), "-w", "start")
    try:
        run(str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "autotag", "sweeps")
        yield f"postgresql+psycopg://autotag@127.0.0.1:{port}/sweeps"
    finally:
        subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"], timeout=120)
        shutil.rmtree(base, ignore_errors=True)
