"""fit() as a Python call: run folder contents, status transitions, failures recorded."""

import json
import shutil
from pathlib import Path

import pytest

from autotag.runs.curves import CurveReader
from autotag.store.run_folder import PER_TAG_AUC, RunFolder, create_run
from autotag.training import trainer
from autotag.training.callbacks import TimeBudget
from autotag.training.fit import fit
from tests.conftest import tiny_config

pytestmark = pytest.mark.slow


def test_fit_api_records_progress_and_skipped_clips(small_csv_dataset: Path, tmp_path: Path) -> None:
    (small_csv_dataset / "audio" / "01.wav").write_bytes(b"RIFF broken")
    config = tiny_config(small_csv_dataset, max_epochs=3)
    run_dir = create_run(config, tmp_path / "runs", "api test")
    assert "_api-test_" in run_dir.name and RunFolder(run_dir).read_status().state == "queued"
    metrics = fit(config, run_dir)
    status = RunFolder(run_dir).read_status().to_json()
    assert status["state"] == "completed" and status["epoch"] == 3 and status["skipped_clips"] == 1
    assert status["started"] <= status["train_clock"][0] <= status["ended"] and status["train_clock"][1] == 0
    assert status["best_val_loss"] == pytest.approx(metrics["best_val_loss"])
    report = json.loads((run_dir / "data_report.json").read_text())
    assert report["undecodable"] == ["audio/01.wav"]
    assert "skipped 1 undecodable audio: audio/01.wav" in (run_dir / "train.log").read_text()
    assert json.loads((run_dir / "labels.json").read_text()) == ["a", "b", "c"]


def test_a_failing_run_says_why_in_its_status(small_csv_dataset: Path, tmp_path: Path) -> None:
    config = tiny_config(small_csv_dataset)
    run_dir = create_run(config, tmp_path / "runs")
    for wav in (small_csv_dataset / "audio").glob("*.wav"):
        wav.write_bytes(b"junk")  # every file breaks after the run was queued
    with pytest.raises(ValueError, match="no usable clips"):
        fit(config, run_dir)
    status = RunFolder(run_dir).read_status().to_json()
    assert status["state"] == "failed" and "no usable clips" in status["error"]


def test_ten_percent_broken_audio_trains_on_the_rest_and_says_exactly_what(demo_dataset: Path, tmp_path: Path) -> None:
    data = tmp_path / "demo"
    shutil.copytree(demo_dataset, data)
    clips = sorted((data / "audio").glob("*.wav"))
    missing = {f"audio/{p.name}" for p in clips[0:120:20]}  # 6 deleted
    broken = {f"audio/{p.name}" for p in clips[10:120:20]}  # 6 overwritten with junk
    for rel in missing:
        (data / rel).unlink()
    for rel in broken:
        (data / rel).write_bytes(b"RIFF....WAVEjunk")
    run_dir = create_run(tiny_config(data, max_epochs=1, chunk_seconds=3.0), tmp_path / "runs")
    fit(run_dir / "config.yaml", run_dir)
    report = json.loads((run_dir / "data_report.json").read_text())
    assert set(report["missing_files"]) == missing and set(report["undecodable"]) == broken
    assert sum(report["split_sizes"].values()) == 108
    status = RunFolder(run_dir).read_status()
    assert status.state == "completed" and status.skipped_clips == 12


def test_the_first_batch_puts_its_train_loss_on_disk_at_once(demo_dataset: Path, tmp_path: Path) -> None:
    """The live curve starts with the first batch, not after `log_every_n_steps` batches
    and TensorBoard's timed flush (5 s); Lightning's own points follow as before."""
    import lightning as L

    from autotag.data.datamodule import TaggingDataModule
    from autotag.data.prepare import prepare_features
    from autotag.runs.curves import CurveReader
    from autotag.training.trainer import LOG_EVERY_N_STEPS, build_module, build_trainer

    config = tiny_config(demo_dataset, max_epochs=1, batch_size=4)
    run_dir = tmp_path / "run"
    report, dataset, cache = prepare_features(config)
    losses: list[float] = []
    seen: list[tuple[list[int], list[float]]] = []

    class Probe(L.Callback):  # runs after the StatusCallback
        def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: dict, *args) -> None:
            losses.append(float(outputs["loss"]))

        def on_train_batch_start(self, trainer: L.Trainer, *args: object) -> None:
            if trainer.global_step == 1:  # the second batch: nothing flushed the writer on a timer yet
                reader = CurveReader(run_dir / "tb")
                reader.refresh()
                curve = reader.get("train_loss")
                seen.append((curve.steps, curve.values))

    train_batches = report.split_sizes["train"] // config.batch_size
    assert train_batches > 2 * LOG_EVERY_N_STEPS
    trainer, _ = build_trainer(config, run_dir, train_batches, extra_callbacks=[Probe()])
    trainer.fit(build_module(config, dataset.labels), datamodule=TaggingDataModule(config, dataset, cache))
    assert seen[0][0] == [0], "the first batch's train_loss was not on disk when the second batch started"
    assert seen[0][1] == pytest.approx([losses[0]])
    reader = CurveReader(run_dir / "tb")
    reader.refresh()
    steps = reader.get("train_loss").steps
    assert steps[:3] == [0, LOG_EVERY_N_STEPS - 1, 2 * LOG_EVERY_N_STEPS - 1]
    assert len(steps) == len(set(steps))


def test_the_stop_check_imports_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Ctrl-C during torch's import leaves it half initialised: importing Lightning in the
    handler then raised (a circular import) and the run stayed "running"."""
    import sys

    from autotag.training.fit import _is_stop

    monkeypatch.setitem(sys.modules, "lightning.pytorch.utilities.exceptions", None)  # importing it raises
    assert _is_stop(KeyboardInterrupt())
    assert not _is_stop(ValueError("a real failure"))
    lightning_exit = SystemExit(1)  # how Lightning ends trainer.fit after a Ctrl-C
    lightning_exit.__context__ = KeyboardInterrupt()
    assert _is_stop(lightning_exit)
    monkeypatch.undo()
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    assert _is_stop(SIGTERMException())


class _Spent(TimeBudget):
    """A budget spent from the start, whatever the machine's speed: an idle machine trained
    100 epochs of the small set in less than 3 s, and early stopping ended the run first."""

    def __init__(self, minutes: float) -> None:
        super().__init__(minutes)
        self.seconds = 0.0


def test_a_run_out_of_time_tests_its_best_checkpoint_and_completes(
    small_csv_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(trainer, "TimeBudget", _Spent)
    config = tiny_config(small_csv_dataset, max_epochs=1000, patience=100, max_minutes=0.05)
    metrics = fit(config, tmp_path / "run", log_file=False)
    status = RunFolder(tmp_path / "run").read_status()
    assert status.state == "completed" and status.ended_by == "time budget of 0.05 min spent"
    assert metrics["ended_by"] == status.ended_by and metrics["epochs"] < 1000
    assert metrics["roc_auc_macro"] is not None


def test_each_tag_gets_a_validation_curve_that_stays_out_of_status_and_epoch_lines(trained_run: Path) -> None:
    reader = CurveReader(RunFolder(trained_run).tb)
    reader.refresh()
    labels = json.loads((trained_run / "labels.json").read_text())
    per_tag = {tag.removeprefix(PER_TAG_AUC) for tag in reader.series if tag.startswith(PER_TAG_AUC)}
    assert per_tag and per_tag <= set(labels)  # a tag the validation split cannot score has none
    assert reader.get(f"{PER_TAG_AUC}{sorted(per_tag)[0]}").steps == reader.get("val_loss").steps
    status = RunFolder(trained_run).read_status()
    assert status.last_metrics and not any("/" in key for key in status.last_metrics)
    epoch_lines = [line for line in (trained_run / "train.log").read_text().splitlines() if " epoch " in line]
    assert epoch_lines and not any(PER_TAG_AUC in line for line in epoch_lines)
