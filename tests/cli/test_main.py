"""The three commands end to end, and their refusals of bad input (exit 2, nothing written)."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from autotag.cli.main import main
from autotag.config import make_config
from autotag.store.run_folder import create_run
from tests.conftest import write_csv_dataset

pytestmark = pytest.mark.slow


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autotag", *args], capture_output=True, text=True, timeout=600)


def test_fit_writes_a_complete_run_folder(trained_run: Path) -> None:
    names = {p.name for p in trained_run.iterdir()}
    assert {"config.yaml", "labels.json", "status.json", "train.log", "tb", "checkpoints", "metrics.json"} <= names
    ckpts = {p.name for p in (trained_run / "checkpoints").iterdir()}
    assert "last.ckpt" in ckpts and any(n.startswith("best-") for n in ckpts)
    status = json.loads((trained_run / "status.json").read_text())
    assert status["state"] == "completed" and status["best_checkpoint"].startswith("checkpoints/best-")
    assert "epoch 8/8" in (trained_run / "train.log").read_text()


def test_val_loss_went_down_and_test_auc_is_well_above_chance(trained_run: Path) -> None:
    acc = EventAccumulator(str(trained_run / "tb"), size_guidance={"scalars": 0})
    acc.Reload()
    val = [e.value for e in acc.Scalars("val_loss")]
    assert len(val) == 8 and min(val[1:]) < val[0]
    assert {"train_loss", "val_loss", "val_roc_auc", "val_pr_auc", "lr"} <= set(acc.Tags()["scalars"])
    metrics = json.loads((trained_run / "metrics.json").read_text())
    labels = json.loads((trained_run / "labels.json").read_text())
    assert metrics["roc_auc_macro"] > 0.75, metrics
    assert 0 < metrics["pr_auc_macro"] <= 1
    assert set(metrics["per_tag"]) == set(labels) and metrics["test_clips"] == 12


def test_tag_prints_every_label_as_json_and_csv(trained_run: Path, demo_dataset: Path) -> None:
    clip = demo_dataset / "audio" / "clip_0000.wav"
    done = _cli("tag", "--run", str(trained_run), str(clip))
    assert done.returncode == 0, done.stderr
    scores = json.loads(done.stdout)[str(clip)]
    assert set(scores) == set(json.loads((trained_run / "labels.json").read_text()))
    assert all(0 <= p <= 1 for p in scores.values())

    done = _cli("tag", "--run", str(trained_run), str(clip), "--format", "csv", "--taggram")
    lines = done.stdout.splitlines()
    assert lines[0].startswith("file,start,") and len(lines) == 1 + 4  # 10 s clip, 3 s chunks
    done = _cli("tag", "--run", str(trained_run), str(clip), "--taggram")
    gram = json.loads(done.stdout)[str(clip)]["taggram"]
    assert gram["chunk_starts"] == [0.0, 3.0, 6.0, 9.0] and len(gram["scores"][0]) == len(scores)


def test_fit_from_a_saved_config_reproduces_the_run(small_csv_dataset: Path, tmp_path: Path) -> None:
    first = _cli(
        "fit",
        "--data",
        str(small_csv_dataset),
        "--model",
        "tiny",
        "--max-epochs",
        "2",
        "--batch-size",
        "4",
        "--chunk-seconds",
        "0.5",
        "--runs-dir",
        str(tmp_path / "r"),
    )
    assert first.returncode == 0, first.stderr
    run1 = Path(first.stdout.splitlines()[-1])
    second = _cli("fit", "--config", str(run1 / "config.yaml"), "--runs-dir", str(tmp_path / "r"))
    assert second.returncode == 0, second.stderr
    run2 = Path(second.stdout.splitlines()[-1])
    assert run2 != run1 and (run2 / "config.yaml").read_text() == (run1 / "config.yaml").read_text()
    m1, m2 = (json.loads((r / "metrics.json").read_text()) for r in (run1, run2))
    assert m1["best_val_loss"] == pytest.approx(m2["best_val_loss"], abs=1e-6)


def _fails_cleanly(capsys: pytest.CaptureFixture, runs: Path, args: list[str], message: str) -> None:
    before = set(runs.iterdir()) if runs.exists() else set()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("autotag: error:") and message in err, err
    assert (set(runs.iterdir()) if runs.exists() else set()) == before


def test_bad_fit_input_exits_2_and_writes_nothing(
    small_csv_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    runs = tmp_path / "runs"
    data = str(small_csv_dataset)
    _fails_cleanly(capsys, runs, ["fit", "--data", data, "--lr", "5"], "lr: Input should be less than or equal to 1")
    _fails_cleanly(capsys, runs, ["fit", "--data", data, "--model", "vgg"], "known models: crnn, fcn")
    _fails_cleanly(capsys, runs, ["fit", "--data", data, "--batch-size", "x"], "batch_size: Input should be a valid")
    _fails_cleanly(capsys, runs, ["fit", "--model", "tiny"], "fit needs --data")
    (tmp_path / "plain").mkdir()
    _fails_cleanly(capsys, runs, ["fit", "--data", str(tmp_path / "plain")], "not a known data set")
    empty = write_csv_dataset(tmp_path / "empty", [])
    _fails_cleanly(capsys, runs, ["fit", "--data", str(empty)], "no usable clips")
    one = write_csv_dataset(tmp_path / "one", [(f"{i}.wav", "x", s) for i, s in enumerate(["train", "valid"])])
    _fails_cleanly(capsys, runs, ["fit", "--data", str(one)], "needs at least 2")
    with pytest.raises(SystemExit) as exc:
        main(["fit", "--no-such-option"])
    assert exc.value.code == 2


def test_bad_tag_input_exits_2(trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"this is not audio")
    assert main(["tag", "--run", str(trained_run), str(junk), str(tmp_path / "gone.mp3")]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "junk.wav: not a readable audio file" in captured.err and "gone.mp3: file not found" in captured.err
    empty_run = create_run(make_config(data=str(tmp_path), model="tiny"), tmp_path / "runs")
    assert main(["tag", "--run", str(empty_run), str(junk)]) == 2
    assert "has no checkpoint yet" in capsys.readouterr().err
    assert main(["tag", "--run", str(tmp_path), str(junk)]) == 2
    assert "is not a run folder" in capsys.readouterr().err


def test_demo_data_command(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["demo-data", str(tmp_path / "d"), "--clips", "10", "--seed", "2"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "d")
    assert main(["demo-data", str(tmp_path / "d"), "--clips", "10"]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(["demo-data", str(tmp_path / "e"), "--clips", "2"]) == 2


def test_tag_names_a_run_that_did_not_complete(
    trained_run: Path, demo_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from autotag.store.run_folder import RunFolder

    run = tmp_path / "runs" / trained_run.name
    shutil.copytree(trained_run, run)
    clip = str(demo_dataset / "audio" / "clip_0000.wav")
    assert main(["tag", "--run", run.name, "--runs-dir", str(run.parent), clip]) == 0  # by name
    assert capsys.readouterr().err == ""  # completed: nothing to say
    RunFolder(run).write_status(state="failed", error="RuntimeError: disk full\nmore lines")
    assert main(["tag", "--run", str(run), clip]) == 0
    err = capsys.readouterr().err
    assert f"warning: run {run.name} is failed (RuntimeError: disk full); using its best checkpoint so far" in err


def test_a_ctrl_c_before_fit_took_charge_of_its_run_folder_stops_the_run(
    small_csv_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run folder exists, queued; a Ctrl-C before `fit` wrote "running" must not leave it
    queued (the scheduler would start it in the background) or running (later "crashed")."""
    from autotag.store.run_folder import RunFolder
    from autotag.training import fit

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(fit, "fit", interrupted)
    runs = tmp_path / "runs"
    args = ["fit", "--data", str(small_csv_dataset), "--model", "tiny", "--chunk-seconds", "0.5"]
    assert main([*args, "--runs-dir", str(runs)]) == 130
    (run,) = (r for r in runs.iterdir() if RunFolder(r).is_run)
    status = RunFolder(run).read_status()
    assert status.state == "stopped" and status.note == "cancelled before it started"
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("stopped before the first checkpoint, so there is nothing to resume"), last


def test_a_ctrl_c_in_any_command_is_one_line_and_exit_130(
    capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from autotag.cli import main as cli

    def interrupted(args: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_cmd_demo_data", interrupted)
    assert main(["demo-data", "anywhere"]) == 130
    assert capsys.readouterr().err == "autotag: interrupted\n"
