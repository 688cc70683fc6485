"""Starting a run from an earlier one: refused when the model differs, weights carried over when it does not."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from autotag.cli.main import main
from autotag.config import make_config
from autotag.store.checkpoints import checkpoint_candidates
from autotag.store.run_folder import RunError, RunFolder
from autotag.training.callbacks import FreezeBackbone
from autotag.training.finetune import TEMPO, _load, check_init_source, init_from_run, output_layer, source_settings
from autotag.training.module import TaggingModule
from tests.conftest import tiny_config


def test_a_source_with_another_model_or_front_end_is_refused_naming_the_difference(
    trained_run: Path, demo_dataset: Path, tmp_path: Path
) -> None:
    check_init_source(make_config(data=str(demo_dataset), model="tiny", init_from=str(trained_run)))
    with pytest.raises(RunError, match=r"model tiny there, fcn here; n_mels 64 there, 96 here"):
        check_init_source(make_config(data=str(demo_dataset), model="fcn", init_from=str(trained_run)))
    with pytest.raises(RunError, match=r"n_mels 64 there, 48 here"):
        check_init_source(make_config(data=str(demo_dataset), model="tiny", n_mels=48, init_from=str(trained_run)))
    with pytest.raises(RunError, match="not a run folder"):
        check_init_source(make_config(data=str(demo_dataset), model="tiny", init_from=str(tmp_path)))
    assert source_settings(trained_run)["model"] == "tiny"


def test_backbone_and_shared_tags_come_from_the_source_new_tags_start_fresh(trained_run: Path) -> None:
    source_labels = json.loads(RunFolder(trained_run).labels.read_text())
    ckpt = torch.load(checkpoint_candidates(trained_run)[0], map_location="cpu", weights_only=True)
    hp = ckpt["hyper_parameters"]
    features = {k: hp[k] for k in ("sample_rate", "n_fft", "hop_length", "n_mels", "f_min", "f_max")}
    labels = [source_labels[1], "kazoo", source_labels[0]]  # two shared (other order), one new
    torch.manual_seed(0)
    module = TaggingModule("tiny", labels, **features)
    fresh = module.state_dict()[output_layer(module) + "weight"].clone()
    assert init_from_run(module, trained_run) == checkpoint_candidates(trained_run)[0]
    own, theirs = module.state_dict(), ckpt["state_dict"]
    head = output_layer(module)
    for key, value in own.items():
        if not key.startswith(head):
            assert torch.equal(value, theirs[key]), key
    assert torch.equal(own[head + "weight"][0], theirs[head + "weight"][1])
    assert torch.equal(own[head + "weight"][2], theirs[head + "weight"][0])
    assert torch.equal(own[head + "weight"][1], fresh[1])  # "kazoo" keeps its fresh start


def test_a_tempo_branch_comes_from_a_source_that_has_one_row_by_row_and_starts_fresh_from_one_without(
    trained_run: Path,
) -> None:
    source_labels = json.loads(RunFolder(trained_run).labels.read_text())
    ckpt = torch.load(checkpoint_candidates(trained_run)[0], map_location="cpu", weights_only=True)
    hp, theirs = ckpt["hyper_parameters"], ckpt["state_dict"]
    assert hp["tempo"] and any(k.startswith(TEMPO) for k in theirs)  # the shipped default
    features = {k: hp[k] for k in ("sample_rate", "n_fft", "hop_length", "n_mels", "f_min", "f_max", "level")}
    labels = ["kazoo", source_labels[0]]
    torch.manual_seed(0)
    module = TaggingModule("tiny", labels, tempo=True, **features)
    fresh = {k: v.clone() for k, v in module.state_dict().items()}
    init_from_run(module, trained_run)
    own = module.state_dict()
    last = TEMPO + "dense.2."
    assert torch.equal(own[TEMPO + "dense.0.weight"], theirs[TEMPO + "dense.0.weight"])
    assert torch.equal(own[last + "weight"][1], theirs[last + "weight"][0])  # the shared tag's row
    assert torch.equal(own[last + "weight"][0], fresh[last + "weight"][0])  # "kazoo" starts fresh

    without = {k: v for k, v in theirs.items() if not k.startswith(TEMPO)}  # a published model, an older run
    torch.manual_seed(0)
    module = TaggingModule("tiny", labels, tempo=True, **features)
    _load(module, without, source_labels)
    assert all(torch.equal(v, fresh[k]) for k, v in module.state_dict().items() if k.startswith(TEMPO))


def test_a_frozen_backbone_gets_no_gradient_until_its_epochs_are_over() -> None:
    module = TaggingModule("tiny", ["a", "b"], n_mels=64)
    module(torch.randn(2, 64, 63)).sum().backward()
    callback, head = FreezeBackbone(epochs=1), output_layer(module)
    callback.on_after_backward(SimpleNamespace(current_epoch=1), module)
    assert all(p.grad is not None for p in module.parameters())
    callback.on_after_backward(SimpleNamespace(current_epoch=0), module)
    graded = {n for n, p in module.named_parameters() if p.grad is not None}
    assert graded == {head + "weight", head + "bias"}
    with_tempo = TaggingModule("tiny", ["a", "b"], n_mels=64, tempo=True)
    with_tempo(torch.randn(2, 64, 63)).sum().backward()
    callback.on_after_backward(SimpleNamespace(current_epoch=0), with_tempo)
    graded = {n for n, p in with_tempo.named_parameters() if p.grad is not None}
    pulse = {n for n, _ in with_tempo.named_parameters() if n.startswith(TEMPO)}
    assert pulse and graded == {head + "weight", head + "bias"} | pulse


def test_fit_init_from_a_run_name_records_the_source_and_trains(
    trained_run: Path, small_csv_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = trained_run.parent
    args = ["fit", "--data", str(small_csv_dataset), "--model", "tiny", "--max-epochs", "2", "--batch-size", "4"]
    args += ["--chunk-seconds", "0.5", "--init-from", trained_run.name, "--freeze-epochs", "1"]
    assert main([*args, "--runs-dir", str(runs), "--run-dir", str(tmp_path / "ft")]) == 0
    run = RunFolder(tmp_path / "ft")
    assert run.read_status().state == "completed"
    assert run.read_status().init_checkpoint == str(checkpoint_candidates(trained_run)[0])
    assert tiny_config(small_csv_dataset).init_from is None
    assert "init_from: " + str(trained_run) in run.config.read_text()
    capsys.readouterr()
    assert main(["fit", "--data", str(small_csv_dataset), "--model", "fcn", "--init-from", str(trained_run)]) == 2
    assert "its model differs (model tiny there, fcn here" in capsys.readouterr().err


def test_only_the_sources_own_checkpoints_with_valid_settings_give_weights(trained_run: Path, tmp_path: Path) -> None:
    import shutil

    source = tmp_path / "source"
    shutil.copytree(trained_run, source)
    best, last = checkpoint_candidates(source)[0], source / "checkpoints" / "last.ckpt"
    ckpt = torch.load(best, map_location="cpu", weights_only=True)
    hp = ckpt["hyper_parameters"]
    features = {k: hp[k] for k in ("sample_rate", "n_fft", "hop_length", "n_mels", "f_min", "f_max")}
    module = TaggingModule("tiny", ["kazoo", "b"], **features)
    ckpt["hyper_parameters"] = {**hp, "labels": [f"t{i}" for i in range(10_001)]}  # one more than a model may have
    torch.save(ckpt, best)
    assert init_from_run(module, source) == last
    foreign = tmp_path / "foreign.ckpt"
    last.rename(foreign)
    last.symlink_to(foreign)  # a good checkpoint, but another's
    with pytest.raises(RunError, match=r"no checkpoint of .* loads: best-.*labels: 10001 tags; at most 10,000$"):
        init_from_run(module, source)
