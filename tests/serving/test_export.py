"""Exported models tag real clips like the PyTorch model, with no autotag model code."""

from __future__ import annotations

import ast
import contextlib
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from autotag.audio.decode import load_audio
from autotag.cli.main import main
from autotag.serving.export import WaveTagger, _chunks, export_run, run_exported
from autotag.serving.tagger import Tagger
from tests.conftest import ROOT

pytestmark = pytest.mark.slow

#: The README's ONNX snippet, as a user copies it (the python block that uses onnxruntime).
README_SNIPPET = next(
    block
    for block in re.findall(r"^```python\n(.*?)^```", (ROOT / "README.md").read_text(encoding="utf-8"), re.S | re.M)
    if "onnxruntime" in block
)


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file in `folder`: name -> (bytes, mtime in ns)."""
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


def _run_with_old_export(trained_run: Path, tmp_path: Path, suffix: str) -> tuple[Path, Path]:
    """A copy of the trained run with an earlier export in it; returns (run, export folder)."""
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    export = run / "export"
    export.mkdir()
    (export / f"model{suffix}").write_bytes(b"the earlier export")
    (export / f"model{suffix}.json").write_text('{"format": "earlier"}')
    return run, export


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

    # Chunk by chunk, the exported file scores what `autotag tag` scores.
    wave = load_audio(clips[0], meta["sample_rate"])
    n = meta["chunk_samples"]
    chunks = np.stack([np.resize(wave[i : i + n], n) for i in range(0, len(wave), n)])  # the last looped
    expected = Tagger.load(run).predict(wave)
    assert expected.labels == meta["labels"]
    np.testing.assert_allclose(run_exported(path, chunks), expected.taggram, atol=1e-4)


@pytest.fixture(scope="module")
def onnx_export(
    trained_run: Path, demo_dataset: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, str, str]:
    """`python -m autotag export RUN --format onnx` in a subprocess: (run copy, its stdout, its stderr)."""
    run = tmp_path_factory.mktemp("onnx") / "run"
    shutil.copytree(trained_run, run)
    clip = str(demo_dataset / "audio" / "clip_0000.wav")
    cmd = [sys.executable, "-m", "autotag", "export", str(run), "--format", "onnx", "--check", clip]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "max abs difference" in done.stderr
    return run, done.stdout, done.stderr


def test_onnx_export_prints_only_the_path_on_stdout_and_no_warning_of_torchvision(
    onnx_export: tuple[Path, str, str],
) -> None:
    run, stdout, stderr = onnx_export
    path = run / "export" / "model.onnx"
    assert stdout == f"{path}\n"  # the exporter's progress lines are not results
    assert "torchvision" not in stderr  # operators a tagger does not use
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.onnx", "model.onnx.json"]


def test_readme_snippet_tags_like_autotag_tag(
    onnx_export: tuple[Path, str, str], demo_dataset: Path, tmp_path: Path
) -> None:
    run, _, _ = onnx_export
    model = run / "export" / "model.onnx"
    meta = json.loads(model.with_suffix(".onnx.json").read_text())
    n, rate = meta["chunk_samples"], meta["sample_rate"]
    # A stereo song whose length is not a multiple of the chunk: the last chunk is short.
    left, _ = sf.read(demo_dataset / "audio" / "clip_0001.wav", dtype="float32")
    right, _ = sf.read(demo_dataset / "audio" / "clip_0002.wav", dtype="float32")
    length = int(7.3 * rate)
    assert length % n and length > n
    song = tmp_path / "song.wav"
    sf.write(song, np.stack([left[:length], right[:length]], axis=1), rate)

    code = (
        README_SNIPPET.replace('"model.onnx.json"', json.dumps(str(model) + ".json"))
        .replace('"model.onnx"', json.dumps(str(model)))
        .replace('"song.wav"', json.dumps(str(song)))
    )
    namespace: dict = {}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(code, namespace)  # noqa: S102 - the README's code, run as a user runs it

    expected = Tagger.load(run).predict(song)  # streamed from the file, as `autotag tag` does
    assert expected.labels == meta["labels"] and len(expected.taggram) == -(-length // n)
    want = np.array([expected.clip[t] for t in meta["labels"]])
    np.testing.assert_allclose(namespace["probs"], want, atol=1e-4)
    top = ast.literal_eval(printed.getvalue())  # plain floats, not np.float32(...)
    assert [t for _, t in top] == [t for t, _ in expected.top(5)]
    assert all(type(p) is float and abs(p - expected.clip[t]) < 1e-4 for p, t in top)
    # The plain mean over the chunks (unweighted, an old snippet) is not what `autotag tag` says.
    plain_mean = run_exported(model, namespace["chunks"]).mean(axis=0)
    assert np.abs(plain_mean - want).max() > 1e-3


def test_onnx_differs_from_pytorch_by_no_more_than_float32_noise_on_lossy_clips(
    onnx_export: tuple[Path, str, str], demo_dataset: Path, tmp_path: Path
) -> None:
    """Above an Ogg encoder's cut-off the log-mels are STFT rounding noise; what the model
    makes of them differs between runtimes by about what a one-ulp change of its input does."""
    run, _, _ = onnx_export
    tagger = Tagger.load(run, device="cpu")
    reference = WaveTagger(tagger).eval()
    wave, rate = sf.read(demo_dataset / "audio" / "clip_0003.wav", dtype="float32")
    song = tmp_path / "song.ogg"
    sf.write(song, wave / np.abs(wave).max(), rate, format="OGG", subtype="VORBIS")  # full scale
    x = _chunks(load_audio(song, rate), tagger.chunk_samples)
    ulp = np.random.default_rng(0).integers(-1, 2, x.shape) * np.spacing(np.abs(x.numpy()))
    with torch.no_grad():
        y = reference(x).numpy()
        noise = np.abs(reference(x + torch.from_numpy(ulp.astype(np.float32))).numpy() - y).max()
    diff = np.abs(run_exported(run / "export" / "model.onnx", x.numpy()) - y).max()
    assert diff < 5 * noise + 1e-6 and diff < 1e-3, (diff, noise)


def test_bad_check_clip_is_refused_before_anything_is_written(
    trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run, export = _run_with_old_export(trained_run, tmp_path, ".onnx")
    before = _snapshot(export)
    notes = tmp_path / "notes.txt"
    notes.write_text("not audio\n")
    assert main(["export", str(run), "--format", "onnx", "--check", str(notes)]) == 2
    assert "notes.txt" in capsys.readouterr().err
    assert _snapshot(export) == before  # same files (no temporaries), same bytes, same mtimes


@pytest.mark.parametrize("failing", ["comparison", "exporter"])
def test_failed_export_leaves_the_earlier_one_intact(
    failing: str, trained_run: Path, demo_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fmt, suffix = ("torchscript", ".pt") if failing == "comparison" else ("onnx", ".onnx")
    run, export = _run_with_old_export(trained_run, tmp_path, suffix)
    before = _snapshot(export)

    def fail(*args: object, **kwargs: object) -> None:
        if failing == "exporter":  # a partial file first, as a crash midway leaves one
            Path(args[2]).write_bytes(b"half a model")
        raise RuntimeError(f"{failing} failed")

    if failing == "comparison":
        monkeypatch.setattr("autotag.serving.export.run_exported", fail)
    else:
        monkeypatch.setattr(torch.onnx, "export", fail)
    with pytest.raises(RuntimeError, match="failed"):
        export_run(run, fmt, check_clips=[demo_dataset / "audio" / "clip_0000.wav"])
    assert _snapshot(export) == before


def test_unknown_export_format_is_a_usage_error(trained_run: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["export", str(trained_run), "--format", "tflite"])
    assert exc.value.code == 2
