"""Export a run's best model, log-mel front end included, to TorchScript or ONNX.

The exported graph maps waveform chunks (batch, chunk_samples) at the model's sample rate
to tag probabilities (batch, tags), so a user needs no autotag code to tag audio: cut a
clip into chunks, run them, average. The STFT exports to both formats (ONNX through
torch's dynamo exporter, opset 18), so the front end is not split off. Every export is
checked against the PyTorch model on real clips; the largest difference is recorded next
to the file in `<file>.json` with the labels and input format.

Accuracy. TorchScript runs PyTorch's own kernels: its outputs are bit-identical to the
PyTorch model's. ONNX differs by the rounding of onnxruntime's float32 STFT, which is a
fixed tiny fraction of a frame's level: it is all there is in bands that hold nothing
else (above a lossy codec's cut-off, between the partials of synthetic tones, in fades),
and a model that looks at those bands passes it on. With the `tiny` demo model: up to
1.9e-4 on demo clips as MP3, 7.2e-4 on full-scale synthetic Ogg clips, under 2e-6 as WAV;
the PyTorch model itself moves by 1e-4 to 4e-4 on those clips when its input samples change
by one float32 ulp. Computing the exported STFT in float64 halved the worst case but made
the file unusable for runtimes without float64 STFT kernels (mobile, TensorRT), so the
graph stays float32.

Writing. Check clips are decoded before anything is written, and the model and its
`.json` go to temporary files in the target folder that replace the old ones only once
the comparison has passed: bad input or a failed export leaves an earlier export intact.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import nn

from autotag.access import Actor, check, record
from autotag.audio.decode import AudioSource, load_audio
from autotag.audio.logmel import has_signal
from autotag.serving.tagger import Tagger
from autotag.store.run_folder import RunFolder

FORMATS = {"torchscript": ".pt", "onnx": ".onnx"}
#: The ONNX exporter's logger that warns of torchvision's operators when torchvision is absent.
ONNX_REGISTRY_LOG = "torch.onnx._internal.exporter._registration"


@contextmanager
def _torchscript() -> Iterator[None]:
    """TorchScript is deprecated in torch 2.14 in favour of torch.export, but it is still the
    format C++ and mobile runtimes load, and users ask for it: keep it, without the warnings."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit\..*is deprecated", category=FutureWarning)
        yield


class WaveTagger(nn.Module):
    """Front end + network + sigmoid: (batch, samples) waveform -> (batch, tags) probabilities,
    all 0 for a silent chunk (`audio.logmel.has_signal`), as `autotag tag` scores it."""

    def __init__(self, tagger: Tagger) -> None:
        super().__init__()
        self.frontend, self.net, self.n_fft = tagger.module.frontend, tagger.module.net, tagger.n_fft

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        mels = self.frontend(wave)
        return torch.sigmoid(self.net(mels)) * has_signal(mels, self.n_fft).unsqueeze(1)


def _chunks(wave: np.ndarray, n: int) -> torch.Tensor:
    """The chunks `autotag tag` scores (`Tagger`): a short last chunk looped to fill the window."""
    return torch.from_numpy(np.stack([np.resize(wave[i : i + n], n) for i in range(0, max(len(wave), 1), n)]))


def _write_model(graph: WaveTagger, fmt: str, example: torch.Tensor, path: Path) -> None:
    with torch.no_grad():
        if fmt == "torchscript":
            with _torchscript():
                torch.jit.trace(graph, example).save(str(path))
            return
        batch = torch.export.Dim("batch", min=1)
        # verbose=False: the exporter's progress lines are print()s to stdout, which is the
        # CLI's result channel (the exported path); anything else it prints goes to stderr.
        # It also warns, once per process, of each torchvision operator it cannot register:
        # a tagger uses none of them.
        logging.getLogger(ONNX_REGISTRY_LOG).setLevel(logging.ERROR)
        with contextlib.redirect_stdout(sys.stderr):
            torch.onnx.export(
                graph,
                (example,),
                str(path),
                dynamo=True,
                verbose=False,
                external_data=False,  # one file: a .data file beside it would be named after the temporary
                input_names=["wave"],
                output_names=["probs"],
                dynamic_shapes=({0: batch},),
            )


def export_run(
    run_dir: str | Path,
    fmt: str,
    out: str | Path | None = None,
    check_clips: list[AudioSource] | None = None,
    actor: Actor | None = None,
) -> tuple[Path, float]:
    """Export the best checkpoint of `run_dir`; returns (file, max abs difference to PyTorch).

    Nothing is written unless the run loads and every check clip decodes, and an existing
    `out` and `out.json` are replaced only once the new export has been compared.

    Args:
        fmt: "torchscript" or "onnx".
        out: Target file (default: `<run>/export/model.pt|.onnx`).
        check_clips: Audio to compare outputs on; default: random noise chunks.

    Raises:
        ValueError: unknown format.
        AudioError: a check clip that cannot be decoded (a ValueError).
        RunError: no usable run or checkpoint.
        AccessDenied: `actor` may not export this run (`autotag.access`).
    """
    run = RunFolder(Path(run_dir))
    actor = check(actor, "export", run.path, run.read_status().owner, run.path.parent)
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; use {' or '.join(FORMATS)}")
    tagger = Tagger.load(run_dir, device="cpu")
    n = tagger.chunk_samples
    inputs = [_chunks(load_audio(c, tagger.sample_rate), n) for c in check_clips] if check_clips else None
    graph = WaveTagger(tagger).eval()
    out = Path(out) if out else run.exports / f"model{FORMATS[fmt]}"
    meta_path = out.with_suffix(out.suffix + ".json")
    example = torch.randn(2, n) * 0.1
    out.parent.mkdir(parents=True, exist_ok=True)
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp = out.with_name(f".{out.name}.{tag}.tmp{FORMATS[fmt]}")
    tmp_meta = out.with_name(f".{meta_path.name}.{tag}.tmp")
    try:
        _write_model(graph, fmt, example, tmp)
        with torch.no_grad():  # tmp ends in the format's suffix, which run_exported goes by
            diff = max(
                float(np.abs(run_exported(tmp, x.numpy()) - graph(x).numpy()).max()) for x in inputs or [example]
            )
        meta = {
            "format": fmt,
            "labels": tagger.labels,
            "sample_rate": tagger.sample_rate,
            "chunk_samples": n,
            "input": "float32 waveform chunks (batch, chunk_samples), mono, at sample_rate",
            "output": "tag probabilities (batch, tags) in labels order",
            "checkpoint": tagger.checkpoint.name,
            "max_abs_diff_vs_pytorch": diff,
            "checked_on": len(inputs or [example]),
        }
        tmp_meta.write_text(json.dumps(meta, indent=2))
        os.replace(tmp, out)
        os.replace(tmp_meta, meta_path)
    finally:
        for leftover in (tmp, tmp_meta):
            leftover.unlink(missing_ok=True)
    if fmt == "onnx":
        # Weights of an earlier export kept beside the file; the new file holds its own.
        out.with_name(out.name + ".data").unlink(missing_ok=True)
    record(run.path.parent, actor, "export", run.path)
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
