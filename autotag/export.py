"""Export a run's best model, log-mel front end included, to TorchScript or ONNX.

The exported graph maps waveform chunks (batch, chunk_samples) at the model's sample rate
to tag probabilities (batch, tags), so a user needs no autotag code to tag audio: cut a
clip into chunks, run them, average. The STFT exports to both formats (ONNX through
torch's dynamo exporter, opset 18), so the front end is not split off. Every export is
checked against the PyTorch model on real clips; the largest difference is recorded next
to the file in `<file>.json` with the labels and input format.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import nn

from autotag.audio import AudioSource, load_audio
from autotag.predict import Tagger

FORMATS = {"torchscript": ".pt", "onnx": ".onnx"}


@contextmanager
def _torchscript() -> Iterator[None]:
    """TorchScript is deprecated in torch 2.14 in favour of torch.export, but it is still the
    format C++ and mobile runtimes load, and users ask for it: keep it, without the warnings."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit\..*is deprecated", category=FutureWarning)
        yield


class WaveTagger(nn.Module):
    """Front end + network + sigmoid: (batch, samples) waveform -> (batch, tags) probabilities."""

    def __init__(self, tagger: Tagger) -> None:
        super().__init__()
        self.frontend, self.net = tagger.module.frontend, tagger.module.net

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(self.frontend(wave)))


def _chunks(wave: np.ndarray, n: int) -> torch.Tensor:
    count = max(1, -(-len(wave) // n))
    padded = np.zeros(count * n, dtype=np.float32)
    padded[: len(wave)] = wave
    return torch.from_numpy(padded).view(count, n)


def export_run(
    run_dir: str | Path, fmt: str, out: str | Path | None = None, check_clips: list[AudioSource] | None = None
) -> tuple[Path, float]:
    """Export the best checkpoint of `run_dir`; returns (file, max abs difference to PyTorch).

    Args:
        fmt: "torchscript" or "onnx".
        out: Target file (default: `<run>/export/model.pt|.onnx`).
        check_clips: Audio to compare outputs on; default: random noise chunks.

    Raises:
        ValueError: unknown format.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; use {' or '.join(FORMATS)}")
    tagger = Tagger.load(run_dir, device="cpu")
    graph = WaveTagger(tagger).eval()
    out = Path(out) if out else Path(run_dir) / "export" / f"model{FORMATS[fmt]}"
    out.parent.mkdir(parents=True, exist_ok=True)
    n = tagger.chunk_samples
    example = torch.randn(2, n) * 0.1
    with torch.no_grad():
        if fmt == "torchscript":
            with _torchscript():
                torch.jit.trace(graph, example).save(str(out))
        else:
            batch = torch.export.Dim("batch", min=1)
            torch.onnx.export(
                graph,
                (example,),
                str(out),
                dynamo=True,
                input_names=["wave"],
                output_names=["probs"],
                dynamic_shapes=({0: batch},),
            )
    inputs = [_chunks(load_audio(c, tagger.sample_rate), n) for c in check_clips] if check_clips else [example]
    diff = max(float(np.abs(run_exported(out, x.numpy()) - graph(x).detach().numpy()).max()) for x in inputs)
    meta = {
        "format": fmt,
        "labels": tagger.labels,
        "sample_rate": tagger.sample_rate,
        "chunk_samples": n,
        "input": "float32 waveform chunks (batch, chunk_samples), mono, at sample_rate",
        "output": "tag probabilities (batch, tags) in labels order",
        "checkpoint": tagger.checkpoint.name,
        "max_abs_diff_vs_pytorch": diff,
        "checked_on": len(inputs),
    }
    out.with_suffix(out.suffix + ".json").write_text(json.dumps(meta, indent=2))
    return out, diff


def run_exported(path: str | Path, chunks: np.ndarray) -> np.ndarray:
    """Probabilities (batch, tags) from an exported file, without autotag's model code."""
    path = Path(path)
    if path.suffix == ".onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(None, {"wave": chunks.astype(np.float32)})[0]
    with _torchscript():
        model = torch.jit.load(str(path))
    with torch.no_grad():
        return model(torch.from_numpy(chunks.astype(np.float32))).numpy()
