"""The log-mel front end: a preview of a file shows what the trained model sees."""

from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from autotag.audio.decode import load_audio
from autotag.audio.logmel import file_logmel
from autotag.config import make_config
from tests.conftest import tone


def test_file_logmel_of_a_config_equals_the_front_end_training_builds(tmp_path: Path) -> None:
    from autotag.training.trainer import build_module

    config = make_config(data=str(tmp_path))  # the schema's defaults, as the Data page's preview
    module = build_module(config, ["a", "b"])
    settings = config.feature_settings()
    assert {k: module.hparams[k] for k in settings} == settings
    path = tmp_path / "clip.wav"
    sf.write(path, tone(2.0, 440), 16000)
    preview = file_logmel(path, settings)
    with torch.no_grad():
        seen = module.frontend(torch.from_numpy(load_audio(path, config.sample_rate))[None])[0].numpy()
    assert preview.shape == (128, 2 * 16000 // 256 + 1)
    np.testing.assert_allclose(preview, seen, atol=1e-4)
