"""Issue 23, items 9, 10 and 12: checkpoints that lead out of their run, that would build a
network of any size, and that vanish while they are listed.

- 9: `runs resume` trained from `checkpoints/last.ckpt -> /elsewhere/foreign.ckpt` (while
  `tag` refused it), and the trainer took `resume_from` from status.json as it stood.
- 10: a checkpoint's hyper-parameters were not checked: `chunk_seconds=1e6` made `tag`
  allocate 59.6 GiB (a traceback).
- 12: listing checkpoints raised FileNotFoundError while ModelCheckpoint rotated best-*.ckpt.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import soundfile as sf

from autotag.config import make_config
from autotag.store.checkpoints import checkpoint_candidates, checkpoint_files, resumable_checkpoint
from autotag.store.job import RunState
from autotag.store.run_folder import RunError, RunFolder, create_run
from tests.conftest import stop_trainers, tone

#: A safety net only, so that a regression fails here instead of swapping the test machine:
#: importing torch alone maps about 3 GB of address space.
ADDRESS_SPACE = 8 << 30


def _own_copy(trained_run: Path, runs_dir: Path) -> Path:
    """A private copy of the shared (read-only) trained run, in this test's runs folder."""
    run = runs_dir / trained_run.name
    shutil.copytree(trained_run, run)
    return run


def _cli(tmp: Path, *args: str, limit_memory: bool = False) -> tuple[int, str, str, int]:
    """(exit status, stdout, stderr, peak resident memory in MB) of `python -m autotag ARGS`.

    The peak is that of this one child (`wait4`), not of every child this session ran.
    """

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))

    with (tmp / "cli.out").open("w+") as out, (tmp / "cli.err").open("w+") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "autotag", *args],
            stdout=out,
            stderr=err,
            text=True,
            preexec_fn=limit if limit_memory else None,
        )
        deadline = time.monotonic() + 300
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        while pid == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid == 0:
            proc.kill()
            pid, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
        out.seek(0)
        err.seek(0)
        return proc.returncode, out.read(), err.read(), usage.ru_maxrss // 1024


# --- 9: only the run's own checkpoint files -------------------------------------------------------


@pytest.mark.slow
def test_runs_resume_never_trains_from_a_symlinked_last_checkpoint(trained_run: Path, tmp_path: Path) -> None:
    run = _own_copy(trained_run, tmp_path / "runs")
    foreign = tmp_path / "elsewhere" / "foreign.ckpt"
    foreign.parent.mkdir()
    shutil.copy(run / "checkpoints" / "last.ckpt", foreign)  # a checkpoint that loads and resumes fine
    for ckpt in (run / "checkpoints").glob("*.ckpt"):
        ckpt.unlink()
    (run / "checkpoints" / "last.ckpt").symlink_to(foreign)
    RunFolder(run).write_status(state=RunState.STOPPED)
    try:
        code, out, err, _ = _cli(tmp_path, "runs", "resume", str(run))
        assert code == 2 and "no checkpoint to resume from" in err and "Traceback" not in err, err
        assert len(err.strip().splitlines()) == 1, err
        assert RunFolder(run).read_status().state == RunState.STOPPED  # nothing queued, nothing started
    finally:
        stop_trainers(tmp_path / "runs")


@pytest.mark.slow
def test_a_symlinked_checkpoints_folder_is_not_the_runs_own(trained_run: Path, tmp_path: Path) -> None:
    run = _own_copy(trained_run, tmp_path / "runs")
    elsewhere = tmp_path / "elsewhere"
    shutil.move(run / "checkpoints", elsewhere)
    (run / "checkpoints").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(RunError, match="no checkpoint yet"):
        checkpoint_candidates(run)
    with pytest.raises(RunError, match="no checkpoint to resume from"):
        resumable_checkpoint(run)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["relative", "absolute", "symlink"])
def test_the_trainer_refuses_a_resume_from_outside_its_run(
    how: str, trained_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`resume_from` comes from status.json, which a hostile hand may have written."""
    from autotag.runs.process import train_run
    from autotag.training import fit as fit_module

    run = _own_copy(trained_run, tmp_path / "runs")
    foreign = tmp_path / "foreign.ckpt"
    shutil.copy(run / "checkpoints" / "last.ckpt", foreign)
    if how == "symlink":
        (run / "checkpoints" / "elsewhere.ckpt").symlink_to(foreign)
    resume = {"relative": "../foreign.ckpt", "absolute": str(foreign), "symlink": "checkpoints/elsewhere.ckpt"}[how]
    trained_from: list[object] = []
    monkeypatch.setattr(fit_module, "fit", lambda *a, **kw: trained_from.append(kw.get("resume_from")) or {})
    RunFolder(run).write_status(state=RunState.QUEUED, resume_from=resume)

    assert train_run(run, resume) != 0
    assert trained_from == []
    status = RunFolder(run).read_status()
    assert status.state == RunState.FAILED and "not one of this run's checkpoints" in (status.error or "")


# --- 10: hyper-parameters checked against the config schema ----------------------------------------


def _rewrite_hparams(path: Path, change: Callable[[dict], None]) -> None:
    import torch

    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    change(ckpt["hyper_parameters"])
    torch.save(ckpt, path)


HOSTILE = {
    "chunk_seconds=1e6": (lambda hp: hp.update(chunk_seconds=1e6), "chunk_seconds"),
    "n_mels=10**6": (lambda hp: hp.update(n_mels=10**6), "n_mels"),
    "10**6 labels": (lambda hp: hp.update(labels=[f"t{i}" for i in range(10**6)]), "labels"),
    "a label of 10**6 characters": (lambda hp: hp["labels"].__setitem__(0, "x" * 10**6), "labels"),
}


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "clip.wav"
    sf.write(path, tone(1.0), 16000)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_tag_refuses_hostile_hparams_in_one_line_without_allocating_gigabytes(
    case: str, trained_run: Path, tmp_path: Path, clip: Path
) -> None:
    run = _own_copy(trained_run, tmp_path / "runs")
    change, field = HOSTILE[case]
    for ckpt in (run / "checkpoints").glob("*.ckpt"):
        _rewrite_hparams(ckpt, change)
    code, out, err, peak_mb = _cli(tmp_path, "tag", "--run", str(run), str(clip), limit_memory=True)
    assert code == 2 and out == "" and "Traceback" not in err, err[-3000:]
    assert len(err.strip().splitlines()) == 1 and len(err) < 2000, err[:3000]
    assert "cannot be loaded" in err and field in err, err
    assert peak_mb < 1500, f"{peak_mb} MB"


@pytest.mark.slow
def test_tag_falls_back_from_hostile_hparams_to_a_good_checkpoint_with_a_note(
    trained_run: Path, tmp_path: Path, clip: Path
) -> None:
    run = _own_copy(trained_run, tmp_path / "runs")
    best = checkpoint_candidates(run)[0]
    assert best.name.startswith("best-")
    _rewrite_hparams(best, HOSTILE["chunk_seconds=1e6"][0])
    code, out, err, _ = _cli(tmp_path, "tag", "--run", str(run), str(clip), limit_memory=True)
    assert code == 0, err[-3000:]
    assert f"note: using last.ckpt; checkpoint {best} cannot be loaded" in err and "chunk_seconds" in err, err


# --- 12: checkpoints rotated while they are listed ------------------------------------------------


def _rotate(checkpoints: Path, stop: threading.Event) -> int:
    """What ModelCheckpoint does on each new best: save the new file (atomically), delete the old."""
    old, i = None, 0
    while not stop.is_set():
        new = checkpoints / f"best-epoch{i:03d}-step{i:06d}.ckpt"
        tmp = checkpoints / f".{new.name}.tmp"
        tmp.write_bytes(b"checkpoint %d" % i)
        os.replace(tmp, new)
        if old is not None:
            old.unlink()
        old, i = new, i + 1
    return i


def test_listing_never_raises_while_best_checkpoints_rotate(tmp_path: Path) -> None:
    run = create_run(make_config(data=str(tmp_path), model="tiny"))
    folder = RunFolder(run)
    folder.checkpoints.mkdir()
    folder.last_checkpoint.write_bytes(b"last")
    stop, rotations = threading.Event(), []
    rotator = threading.Thread(target=lambda: rotations.append(_rotate(folder.checkpoints, stop)))
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)  # interleave the two threads often, as a busy server does
    errors: list[BaseException] = []
    rotator.start()
    try:
        for _ in range(2000):
            try:
                stamp = tuple((c.path.name, c.mtime_ns) for c in checkpoint_files(run))  # the Tag page's cache key
                assert stamp[-1][0] == "last.ckpt"
                assert checkpoint_candidates(run)[-1] == folder.last_checkpoint
            except Exception as exc:  # noqa: BLE001 - the test counts every kind
                errors.append(exc)
        for _ in range(100):
            try:
                resumable_checkpoint(run)  # nothing here loads: the only allowed error says so
            except RunError as exc:
                assert "no checkpoint to resume from" in str(exc)
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)
    finally:
        stop.set()
        rotator.join()
        sys.setswitchinterval(switch)
    assert rotations[0] > 100, "the rotation barely ran: the test proved nothing"
    assert errors == [], f"{len(errors)} errors, e.g. {errors[0]!r}"
