from pathlib import Path
from typing import get_args

import pytest

from autotag.config import (
    ConfigError,
    DataFormat,
    JamendoSubset,
    TrainConfig,
    field_choices,
    field_range,
    load_config,
    make_config,
    save_config,
)
from autotag.models.specs import SPECS


def test_paper_values_fill_unset_feature_settings() -> None:
    short = make_config(data="d", model="shortchunk_cnn")
    assert short.n_mels == 128
    assert short.chunk_samples == 59049
    assert (short.sample_rate, short.n_fft, short.hop_length) == (16000, 512, 256)
    fcn = make_config(data="d", model="fcn")
    assert fcn.n_mels == 96 and fcn.chunk_seconds == pytest.approx(29.1)


def test_seed_recipe_defaults() -> None:
    cfg = make_config(data="d")
    assert cfg.lr == 1e-3 and cfg.patience == 10 and cfg.accelerator == "auto"


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"lr": 5.0}, "lr: Input should be less than or equal to 1"),
        ({"batch_size": 0}, "batch_size: Input should be greater than or equal to 1"),
        ({"max_epochs": "many"}, "max_epochs: Input should be a valid integer"),
        (
            {"model": "vgg"},
            "unknown model 'vgg'; known models: crnn, fcn, musicnn, shortchunk_cnn, shortchunk_resnet, tiny",
        ),
        ({"format": "zip"}, "format: Input should be 'auto', 'csv', 'mtat' or 'jamendo'"),
        ({"f_max": 9000.0}, "f_max 9000.0 Hz is above the Nyquist frequency 8000.0 Hz"),
        ({"model": "fcn", "chunk_seconds": 3.0}, "model fcn needs chunks of at least 20.48 s"),
        ({"model": "shortchunk_cnn", "n_mels": 64}, "needs n_mels >= 128"),
        ({"colour": "red"}, "colour: Extra inputs are not permitted"),
    ],
)
def test_invalid_values_name_field_and_limit(values: dict, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        make_config(data="d", **values)
    assert expected in str(err.value)


def test_yaml_round_trip_is_exact(tmp_path: Path) -> None:
    cfg = make_config(data="/x", model="tiny", lr=3e-4, seed=7)
    save_config(cfg, tmp_path / "config.yaml")
    again = load_config(tmp_path / "config.yaml")
    assert again == cfg
    assert "n_mels: 64" in (tmp_path / "config.yaml").read_text()  # resolved values are explicit


def test_load_config_overrides_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    save_config(make_config(data="/x", model="tiny"), path)
    assert load_config(path, max_epochs=3, lr=None).max_epochs == 3
    path.write_text("- not a mapping\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(path)
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "missing.yaml")


def test_a_config_file_without_newer_fields_means_what_it_did_when_written(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("data: /x\nmodel: tiny\n")  # written before `level` and `tempo` existed
    older = load_config(path)
    assert (older.level, older.tempo) == ("absolute", False)
    new = make_config(data="/x", model="tiny")
    assert (new.level, new.tempo) == ("relative", True)
    save_config(new, path)
    assert (load_config(path).level, load_config(path).tempo) == ("relative", True)


def test_tempo_is_on_unless_a_linear_probe_which_cannot_train_it() -> None:
    assert make_config(data="/x", init_from="/r", transfer="linear-probe").tempo is False
    assert make_config(data="/x", init_from="/r").tempo is True and make_config(data="/x", tempo=False).tempo is False
    with pytest.raises(ConfigError, match="a linear probe trains the output layer alone, not a tempo branch"):
        make_config(data="/x", init_from="/r", transfer="linear-probe", tempo=True)


def test_field_range_feeds_sliders() -> None:
    assert field_range("lr") == (0.0, 1.0)
    assert field_range("batch_size") == (1, 1024)
    assert set(TrainConfig.model_fields) >= {"lr", "batch_size", "max_epochs", "patience", "model", "seed"}


def test_data_folders_are_stored_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A trainer reads config.yaml from another working folder: `data d60` typed in
    /elsewhere must still mean /elsewhere/d60 there."""
    monkeypatch.chdir(tmp_path)
    cfg = make_config(data="d60", audio_root="~/audio", model="tiny")
    assert cfg.data == str(tmp_path / "d60") and cfg.audio_root == str(Path.home() / "audio")
    save_config(cfg, tmp_path / "config.yaml")
    monkeypatch.chdir("/")
    assert load_config(tmp_path / "config.yaml").data == str(tmp_path / "d60")
    with pytest.raises(ConfigError, match="data: give a folder"):
        make_config(data=" ", model="tiny")


#: Every field with a fixed set of values and what the schema allows there.
CHOICES = {
    "format": list(get_args(DataFormat)),
    "jamendo_subset": list(get_args(JamendoSubset)),
    "model": list(SPECS),
    "level": ["relative", "absolute"],
    "transfer": ["fine-tune", "linear-probe"],
    "accelerator": ["auto", "cpu", "gpu"],
    "strategy": ["auto", "ddp"],
    "precision": ["32-true", "16-mixed", "bf16-mixed"],
}


@pytest.mark.parametrize(("name", "allowed"), CHOICES.items())
def test_field_choices_are_exactly_what_validation_accepts(name: str, allowed: list) -> None:
    assert field_choices(name) == allowed
    needs = {"init_from": "."} if name == "transfer" else {}  # how to learn from a source needs the source
    for value in allowed:
        assert getattr(make_config(data="d", **needs, **{name: value}), name) == value
    with pytest.raises(ConfigError, match=name):
        make_config(data="d", **{name: "none-of-these"})


def test_only_choice_fields_have_choices() -> None:
    listed = ", ".join(CHOICES)  # in schema order
    for name in set(TrainConfig.model_fields) - set(CHOICES):
        with pytest.raises(ValueError, match=f"field '{name}' has no fixed choices; fields with choices: {listed}$"):
            field_choices(name)
    with pytest.raises(ValueError, match="unknown config field 'colour'; fields: data, format"):
        field_choices("colour")


def test_default_feature_settings_and_frame_time() -> None:
    """The schema's defaults give the Data page's spectrogram preview its settings."""
    cfg = make_config(data="d")
    assert cfg.feature_settings() == {
        "sample_rate": 16000,
        "n_fft": 512,
        "hop_length": 256,
        "n_mels": 128,
        "f_min": 0.0,
        "f_max": 8000.0,
    }
    assert cfg.frame_seconds == 256 / 16000


def test_log_stops_are_decimal_literals_in_one_two_three_five_steps() -> None:
    from autotag.config import log_stops

    assert log_stops(1e-5, 1e-3) == [1e-5, 2e-5, 3e-5, 5e-5, 1e-4, 2e-4, 3e-4, 5e-4, 1e-3]
    assert log_stops(2e-3, 0.5) == [2e-3, 3e-3, 5e-3, 1e-2, 2e-2, 3e-2, 5e-2, 0.1, 0.2, 0.3, 0.5]
    assert 3e-5 in log_stops(1e-5, 1.0)  # not 3.0000000000000004e-05: a slider's value must be one of its stops
