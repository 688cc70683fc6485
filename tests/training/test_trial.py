"""The trainer's side of a sweep trial: trial.json, and the worker's verdict it waits for."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from autotag.store.run_folder import RunFolder
from autotag.training.trial import TrialLink, Verdict, await_verdict

LINK = TrialLink("sqlite:///s.db", "s", trial_id=7, number=3, sweep="/sweeps/s", metric="val_loss", pruner="median")


def test_the_verdict_on_the_epoch_is_awaited_and_a_late_prune_still_counts(tmp_path: Path) -> None:
    run = RunFolder(tmp_path)
    Verdict(epoch=2, prune=False).write(run)
    assert await_verdict(run, 2) is False  # already there: no wait
    timer = threading.Timer(0.2, Verdict(epoch=3, prune=True).write, args=(run,))
    timer.start()
    assert await_verdict(run, 3, wait_s=10) is True  # written while the trainer waits
    timer.join()
    Verdict(epoch=3, prune=True).write(run)  # a verdict on an earlier epoch that came after its wait
    assert await_verdict(run, 4, wait_s=0) is True


def test_without_a_verdict_the_trial_trains_on_and_says_so(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    run = RunFolder(tmp_path)
    Verdict(epoch=1, prune=False).write(run)  # the last word was on an earlier epoch
    with caplog.at_level(logging.WARNING, logger="autotag.training.fit"):
        assert await_verdict(run, 2, wait_s=0.1) is False
    assert "epoch 2: no word from the sweep within 0 s; the trial trains on" in caplog.text


@pytest.mark.parametrize(
    "text",
    ['{"epoch": 5, "prune": "yes"}', '{"epoch": 5, "prune": 1}', '{"epoch": -1, "prune": true}', "[]", "{", ""],
)
def test_a_damaged_verdict_prunes_nothing(tmp_path: Path, text: str) -> None:
    run = RunFolder(tmp_path)
    run.sweep_verdict.write_text(text)
    assert Verdict.read(run) is None
    assert await_verdict(run, 5, wait_s=0) is False


def test_trial_json_round_trips_and_an_earlier_versions_port_and_token_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / "trial.json"
    LINK.write(path)
    assert TrialLink.read(path) == LINK
    path.write_text(json.dumps({**json.loads(path.read_text()), "port": 40123, "token": "ab12"}))
    assert TrialLink.read(path) == LINK
    path.write_text(json.dumps({**json.loads(path.read_text()), "trial_id": "seven"}))
    assert TrialLink.read(path) is None
    assert TrialLink.read(tmp_path / "missing.json") is None


def test_the_trainer_side_imports_no_optuna_nor_sqlalchemy() -> None:
    """Why trainers talk to the study through their worker: a trial starts without Optuna's storage (about 1 s)."""
    code = (
        "import sys, autotag.training.fit, autotag.training.callbacks, autotag.training.trial\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('optuna', 'sqlalchemy', 'alembic')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
