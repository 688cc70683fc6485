"""Hostile input to training: splits that rank nothing, moved run folders, Ctrl-C, missing GPUs, junk audio.

Each case is a probe that once broke `fit` (issue 23): a NaN metric failed the run at the
end of its first epoch; a run folder restored elsewhere could not resume; a Ctrl-C while
torch was being imported left the run "running" (later "crashed") with a traceback; an
`--accelerator gpu` without a GPU, or a data set of random bytes, left a failed run folder.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from autotag.cli.main import main
from autotag.store.job import RunState
from autotag.store.run_folder import RunError, RunFolder
from tests.conftest import tiny_config, write_csv_dataset

pytestmark = pytest.mark.slow

TAGS = ["a;b", "b", "a;c", "c", "a", "b;c", "a;b;c", "c", "a;b", "b;c", "a;c", "b"]


def _fit_args(data: Path, runs: Path, *extra: str) -> list[str]:
    return ["fit", "--data", str(data), "--model", "tiny", "--batch-size", "4", "--chunk-seconds", "0.5"] + [
        "--runs-dir",
        str(runs),
        *extra,
    ]


def _runs(runs: Path) -> list[Path]:
    return [r for r in runs.iterdir() if RunFolder(r).is_run] if runs.is_dir() else []


def test_a_validation_split_that_ranks_no_tag_completes_with_n_a(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """12 clips split 10/1/1: no tag of valid or test has both a positive and a negative clip."""
    splits = ["train"] * 10 + ["valid", "test"]
    data = write_csv_dataset(tmp_path / "d", [(f"{i:02d}.wav", t, s) for i, (t, s) in enumerate(zip(TAGS, splits))])
    runs = tmp_path / "runs"
    assert main(_fit_args(data, runs, "--max-epochs", "1")) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "test ROC-AUC n/a, PR-AUC n/a (no tag in the test split has both a positive and a negative clip" in err
    assert "no tag can be ranked in valid (each needs a clip with it and one without; on its one clip: a, c" in err
    (run,) = _runs(runs)
    status = RunFolder(run).read_status()
    assert status.state is RunState.COMPLETED and status.epoch == 1 and status.test_roc_auc is None
    assert status.last_metrics["val_roc_auc"] is None and status.last_metrics["val_loss"] > 0
    assert (run / status.best_checkpoint).is_file()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["roc_auc_macro"] is None and "no tag in the test split" in metrics["note"]
    log = (run / "train.log").read_text()
    assert "val_roc_auc n/a (no tag in the valid split has both a positive and a negative clip" in log


def test_a_moved_run_folder_resumes_and_completes_inside_its_new_folder(
    small_csv_dataset: Path, tmp_path: Path
) -> None:
    """Killed while testing its best checkpoint, then `mv runs runs-moved`, then resumed."""
    from autotag.runs.process import train_run
    from autotag.store.run_folder import create_run
    from autotag.training.fit import fit

    runs = tmp_path / "runs"
    run = create_run(tiny_config(small_csv_dataset, max_epochs=2), runs)
    trained = fit(run / "config.yaml", run, log_file=False)
    # What a kill in the test phase leaves: every checkpoint, no metrics, a run its manager calls crashed.
    (run / "metrics.json").unlink()
    (run / "thresholds.json").unlink()
    RunFolder(run).write_status(state=RunState.CRASHED, phase="testing")
    moved = tmp_path / "runs-moved"
    shutil.move(runs, moved)
    run = moved / run.name

    assert train_run(run, "checkpoints/last.ckpt") == 0
    status = RunFolder(run).read_status()
    assert status.state is RunState.COMPLETED, status.error
    assert (run / status.best_checkpoint).is_file() and status.best_checkpoint.startswith("checkpoints/best-")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["best_checkpoint"] == trained["best_checkpoint"]
    assert metrics["best_val_loss"] == pytest.approx(trained["best_val_loss"])  # the best score came along
    assert len(list((run / "checkpoints").glob("best-*.ckpt"))) == 1


def _interrupted_fit(data: Path, base: Path, marker: str) -> tuple[int, str, list[str]]:
    """`fit` in its own process group, Ctrl-C'd (SIGINT to the group, as a terminal sends it)
    right after it printed a line starting with `marker`; (exit status, stderr, run states)."""
    env = {**os.environ, "AUTOTAG_CACHE_DIR": str(base / "cache"), "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "autotag", *_fit_args(data, base / "runs", "--max-epochs", "100")]
    proc = subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        # As in a terminal: a suite started in the background of a non-interactive shell
        # inherits an ignored SIGINT, and Python then installs no Ctrl-C handler at all.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        seen = []
        for line in proc.stderr:
            seen.append(line)
            if line.startswith(marker):
                break
        assert proc.poll() is None, f"fit ended before {marker!r}: {''.join(seen)[-3000:]}"
        os.killpg(proc.pid, signal.SIGINT)
        _, rest = proc.communicate(timeout=120)
    finally:
        proc.kill()  # a no-op once it has ended
    runs = base / "runs"
    states = [RunFolder(r).read_status().state for r in _runs(runs)]
    return proc.returncode, "".join(seen) + rest, states


@pytest.mark.parametrize(
    ("marker", "written"),
    [
        ("features", None),  # decoding the data set: the folder may just have been made, or not
        ("run folder:", True),  # importing Lightning (and torch's rest) in fit
        ("training ", True),  # inside trainer.fit, before the first epoch ends
    ],
)
def test_ctrl_c_at_any_moment_ends_stopped_without_a_traceback(
    small_csv_dataset: Path, tmp_path: Path, marker: str, written: bool | None
) -> None:
    code, err, states = _interrupted_fit(small_csv_dataset, tmp_path, marker)
    assert "Traceback" not in err, err[-3000:]
    assert code == 130, err[-3000:]
    last = err.strip().splitlines()[-1]
    if written is None:  # 12 short clips decode fast: which side of the folder's making the signal lands on varies
        written = bool(states)
    if written:
        assert states == [RunState.STOPPED], err[-3000:]
        assert last.startswith("stopped before the first checkpoint, so there is nothing to resume"), last
    else:
        assert states == [] and last == "autotag: interrupted", err[-3000:]


def _gpu_request() -> list[str]:
    """More GPUs than this machine has: none on a CPU box, one more than there are elsewhere."""
    import torch

    have = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return ["--accelerator", "gpu", "--devices", str(have + 1)]


def test_more_gpus_than_the_machine_has_are_refused_before_a_run_folder_exists(
    small_csv_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from autotag.runs import manager

    runs = tmp_path / "runs"
    request = _gpu_request()
    assert main(_fit_args(small_csv_dataset, runs, *request)) == 2
    err = capsys.readouterr().err
    assert err.startswith("autotag: error:") and len(err.strip().splitlines()) == 1, err
    assert "but torch finds no GPU" in err or "GPU(s) that torch can use" in err
    assert not runs.exists()
    config = tiny_config(small_csv_dataset, accelerator="gpu", devices=int(request[-1]))
    with pytest.raises(RunError, match="GPU"):
        manager.launch(config, runs)  # the Train page's launch: the same message, shown on the page
    assert _runs(runs) == []


def test_a_data_set_of_random_bytes_is_refused_before_a_run_folder_exists(
    small_csv_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    for i, wav in enumerate(sorted((small_csv_dataset / "audio").glob("*.wav"))):
        wav.write_bytes(os.urandom(4096 + i))
    runs = tmp_path / "runs"
    assert main(_fit_args(small_csv_dataset, runs)) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith(f"autotag: error: data set {small_csv_dataset} has no usable clips")
    assert "skipped 12 undecodable audio" in err
    assert _runs(runs) == []  # its runs folder was checked for space before the decode, and holds no run
