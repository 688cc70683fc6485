"""A robustness report of a trained run: clean equals its test, noise costs, stop and go on, bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from autotag.robustness import job
from autotag.store.job import RunState
from autotag.store.run_folder import RunFolder
from tests.conftest import paused, wait_until

pytestmark = pytest.mark.slow

#: How much a stronger noise may raise the macro ROC-AUC over a milder one: a few test
#: clips decide it, and one clip's rank moving is worth about this much.
NOISE_TOLERANCE = 0.03
FEW = ["white_noise", "gain"]


def _copy(run: Path, to: Path) -> Path:
    """The shared trained run is read-only: reports write into a copy."""
    return Path(shutil.copytree(run, to / run.name))


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autotag", *args], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def full_report(trained_run: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """Every perturbation at every strength, from the CLI as a user runs it."""
    run = _copy(trained_run, tmp_path_factory.mktemp("robust"))
    done = _cli("robustness", "--run", str(run))
    assert done.returncode == 0, done.stderr[-3000:]
    return run, json.loads(done.stdout)


def test_the_report_has_the_published_shape_and_is_saved(full_report: tuple[Path, dict]) -> None:
    from autotag.audio.perturb import PERTURBATIONS

    run, report = full_report
    assert json.loads((run / "robustness.json").read_text()) == report
    assert list(report) == ["clean", *PERTURBATIONS]
    assert set(report["clean"]) == {"roc_auc_macro", "pr_auc_macro", "per_tag"}
    for name, perturbation in PERTURBATIONS.items():
        assert list(report[name]) == [perturbation.label(s) for s in perturbation.strengths]
        for row in report[name].values():
            assert set(row) == {"roc_auc_macro", "pr_auc_macro", "per_tag", "flipped"}
            assert 0.0 <= row["flipped"] <= 1.0
            assert set(row["per_tag"]) == set(report["clean"]["per_tag"])
    status = job.ReportFolder(run).read_status()
    assert status.state is RunState.COMPLETED and status.done == status.total
    assert set(status.seconds) >= {"clean", "decode", *PERTURBATIONS}


def test_the_clean_row_is_the_run_s_own_test_score(full_report: tuple[Path, dict]) -> None:
    run, report = full_report
    metrics = json.loads(RunFolder(run).metrics.read_text())
    assert report["clean"]["roc_auc_macro"] == pytest.approx(metrics["roc_auc_macro"], abs=1e-6)
    assert report["clean"]["pr_auc_macro"] == pytest.approx(metrics["pr_auc_macro"], abs=1e-6)


def test_more_noise_does_not_score_better(full_report: tuple[Path, dict]) -> None:
    _, report = full_report
    for name in ("white_noise", "pink_noise"):
        aucs = [report["clean"]["roc_auc_macro"]] + [row["roc_auc_macro"] for row in report[name].values()]
        for milder, stronger in zip(aucs, aucs[1:]):
            assert stronger <= milder + NOISE_TOLERANCE, (name, aucs)
        assert aucs[-1] < aucs[0]  # 0 dB SNR (noise as loud as the music) costs something
        flipped = [row["flipped"] for row in report[name].values()]
        assert flipped[-1] > flipped[0]


def test_csv_has_a_macro_row_and_a_row_per_tag(full_report: tuple[Path, dict]) -> None:
    from autotag.cli.robustness import render_report

    _, report = full_report
    lines = render_report(report, "csv").splitlines()
    assert lines[0] == "perturbation,strength,tag,roc_auc,pr_auc,flipped"
    tags = len(report["clean"]["per_tag"])
    conditions = 1 + sum(len(v) for k, v in report.items() if k != "clean")
    assert len(lines) == 1 + conditions * (1 + tags)
    assert lines[1].startswith("clean,,(macro),")


def _ended(folder: job.ReportFolder, state: RunState, after: float = 0.0) -> job.ReportStatus:
    def ended() -> job.ReportStatus | None:
        status = folder.read_status()
        return status if status.state is state and (status.ended or 0.0) > after else None

    return wait_until(f"the report to end {state}", ended)


def test_a_stopped_report_goes_on_and_ends_as_one_made_in_one_go(trained_run: Path, tmp_path: Path) -> None:
    whole = _copy(trained_run, tmp_path / "whole")
    done = _cli("robustness", "--run", str(whole), "--perturbations", *FEW, "--seed", "3")
    assert done.returncode == 0, done.stderr[-2000:]
    in_one_go = json.loads(done.stdout)

    run = _copy(trained_run, tmp_path / "stopped")
    folder = job.ReportFolder(run)
    job.start(run, "test", FEW, seed=3)

    def scored_two() -> job.ReportStatus | None:
        status = folder.read_status()
        return status if status.done >= 2 else None

    status = wait_until("two clips scored", scored_two)
    with paused(status.pid):  # stopped before its last clip, however fast the machine
        assert folder.state().active and folder.read_status().done < status.total, "the report ended first"
        assert job.stop(run)
    status = _ended(folder, RunState.STOPPED)
    assert 2 <= status.done < status.total and folder.progress.is_file()
    assert not folder.report.exists()

    job.start(run, "test", FEW, seed=3)  # the same request: goes on from the clips scored
    status = _ended(folder, RunState.COMPLETED)
    assert status.done_at_start >= 2
    assert json.loads(folder.report.read_text()) == in_one_go

    job.start(run, "test", FEW, seed=4)  # another seed: starts over
    status = _ended(folder, RunState.COMPLETED, after=status.ended)
    assert status.done_at_start == 0
    assert json.loads(folder.report.read_text()) != in_one_go


def test_bad_requests_exit_2_with_one_line(trained_run: Path, tmp_path: Path) -> None:
    run = _copy(trained_run, tmp_path)
    unknown = _cli("robustness", "--run", str(run), "--perturbations", "reverb")
    assert unknown.returncode == 2
    assert unknown.stderr.strip().splitlines() == [
        "autotag: error: no perturbation 'reverb'; known: white_noise, pink_noise, pitch_shift, time_stretch, "
        "low_pass, mp3, ogg, gain, clipping"
    ]

    RunFolder(run).write_status(state=RunState.FAILED, error="RuntimeError: out of memory")
    failed = _cli("robustness", "--run", str(run))
    assert failed.returncode == 2
    assert failed.stderr.strip() == (
        f"autotag: error: run {run.name} failed (RuntimeError: out of memory): there is no model to report on"
    )

    RunFolder(run).write_status(state=RunState.COMPLETED, error=None)
    shutil.rmtree(RunFolder(run).checkpoints)
    RunFolder(run).write_status(best_checkpoint=None)
    none = _cli("robustness", "--run", str(run))
    assert none.returncode == 2 and none.stderr.strip() == f"autotag: error: run {run.name} has no checkpoint"
    assert not (run / "robustness.json").exists()
