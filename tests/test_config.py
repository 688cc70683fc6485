from pathlib import Path

import pytest

from autotag.config import ConfigError, TrainConfig, field_range, load_config, make_config, save_config


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
        ({"model": "vgg"}, "unknown model 'vgg'; known models: fcn, shortchunk_cnn, shortchunk_resnet, tiny"),
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
