"""Exported models tag real clips like the PyTorch model, with no autotag model code."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from autotag.__main__ import main
from autotag.audio import load_audio
from autotag.export import run_exported
from autotag.predict import Tagger

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_export_matches_pytorch_on_real_clips(
    fmt: str, trained_run: Path, demo_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    clips = [str(demo_dataset / "audio" / f"clip_000{i}.wav") for i in range(3)]
    assert main(["export", str(run), "--format", fmt, "--check", *clips]) == 0
    captured = capsys.readouterr()
    path = Path(captured.out.strip().splitlines()[-1])
    meta = json.loads(path.with_suffix(path.suffix + ".json").read_text())
    assert meta["max_abs_diff_vs_pytorch"] < 1e-4 and meta["checked_on"] == 3
    assert "max abs difference" in captured.err

    # What the README shows a user: chunk, run, average.
    wave = load_audio(clips[0], meta["sample_rate"])
    n = meta["chunk_samples"]
    chunks = np.zeros((-(-len(wave) // n), n), np.float32)
    chunks.flat[: len(wave)] = wave
    per_chunk = run_exported(path, chunks)
    expected = Tagger.load(run).predict(wave)
    assert expected.labels == meta["labels"]
    np.testing.assert_allclose(per_chunk, expected.taggram, atol=1e-4)


def test_unknown_export_format_is_a_usage_error(trained_run: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["export", str(trained_run), "--format", "tflite"])
    assert exc.value.code == 2
