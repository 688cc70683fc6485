"""A linear probe on an earlier run's network: embeddings computed once and cached, only the output layer trained."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from autotag.config import ConfigError, make_config
from autotag.serving.tagger import Tagger
from autotag.store.checkpoints import checkpoint_candidates
from autotag.training.finetune import TEMPO, output_layer
from autotag.training.fit import fit
from autotag.training.module import TaggingModule
from tests.conftest import tiny_config


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def test_a_linear_probe_trains_only_the_output_layer_on_embeddings_it_computes_once(
    trained_run: Path, small_csv_dataset: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = tiny_config(
        small_csv_dataset, n_mels=64, init_from=str(trained_run), transfer="linear-probe", max_epochs=5, patience=5
    )
    with caplog.at_level(logging.INFO, logger="autotag"):
        metrics = fit(config, tmp_path / "probe", log_file=False)
    assert metrics["roc_auc_macro"] is not None and metrics["ended_by"] == "max_epochs (5) reached"
    embedded = [r.getMessage() for r in caplog.records if r.getMessage().startswith("embedded ")]
    assert embedded == ["embedded 8 chunks", "embedded 2 chunks", "embedded 2 chunks"]  # train, valid, test

    source = _weights(checkpoint_candidates(trained_run)[0])
    probe = _weights(checkpoint_candidates(tmp_path / "probe")[0])
    head = output_layer(TaggingModule("tiny", ["a", "b", "c"], n_mels=64))
    assert any(k.startswith(TEMPO) for k in source)  # the source's tempo branch: a probe has none to train
    assert set(probe) == {k for k in source if not k.startswith(TEMPO)}
    assert all(torch.equal(probe[k], source[k]) for k in probe if not k.startswith(head))  # the backbone is frozen
    assert probe[head + "weight"].shape == (3, source[head + "weight"].shape[1])
    tagged = Tagger.load(tmp_path / "probe", "cpu").predict(torch.rand(16000).numpy())
    assert set(tagged.clip) == {"a", "b", "c"}  # an ordinary run: its checkpoint tags like any other

    tuned = tiny_config(small_csv_dataset, n_mels=64, init_from=str(tmp_path / "probe"), backbone_lr_factor=0.1)
    assert fit(tuned, tmp_path / "lp-ft", log_file=False)["roc_auc_macro"] is not None  # fine-tuning the probe's run

    files = sorted((tmp_path / "cache" / "embeddings").glob("*.pt"))
    assert len(files) == 3
    files[0].write_bytes(b"not a tensor")  # damaged: computed again, never trusted
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="autotag"):
        fit(config.model_copy(update={"seed": 7}), tmp_path / "again", log_file=False)
    again = [r.getMessage() for r in caplog.records if r.getMessage().startswith(("embedded ", "embeddings "))]
    assert len(again) == 2 and "unreadable" in again[0]  # the other two splits: read from the cache


def test_transfer_settings_need_a_source_and_a_probe_trains_no_backbone(small_csv_dataset: Path) -> None:
    for bad in ({"transfer": "linear-probe"}, {"backbone_lr_factor": 0.1}, {"freeze_epochs": 2}):
        with pytest.raises(ConfigError, match="needs init_from"):
            make_config(data=str(small_csv_dataset), **bad)
    with pytest.raises(ConfigError, match="a linear probe never trains the backbone"):
        make_config(data=str(small_csv_dataset), init_from=".", transfer="linear-probe", freeze_epochs=1)


def test_a_probe_whose_embeddings_cannot_be_kept_still_trains(
    trained_run: Path, small_csv_dataset: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = tiny_config(small_csv_dataset, n_mels=64, init_from=str(trained_run), transfer="linear-probe")
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "embeddings").write_text("a file where the folder would go")
    with caplog.at_level(logging.WARNING, logger="autotag"):
        metrics = fit(config, tmp_path / "probe", log_file=False)
    assert metrics["roc_auc_macro"] is not None
    assert any(r.getMessage().startswith("embeddings not kept for the next probe") for r in caplog.records)
