"""Tagging speed and memory: a 30 s clip warm, and peak memory for 1-, 10- and 60-minute files.

The model weights do not matter for either figure, so the models are freshly initialised
(with batch-norm statistics like a trained model's) and saved as checkpoints like a run's.
The 30 s clip is tagged from a file, warm (model loaded, one warm-up call), as a 16 kHz
mono WAV and as a 44.1 kHz stereo WAV. Its time is split into reading and resampling,
log-mels and network as `predict` runs them, next to the network as trained (no folded
batch norms, not channels-last) on the same chunks, with the largest difference of the
probabilities, and to all chunks in one batch. Peak memory is the maximum resident set
size of a separate process that loads the checkpoint and tags one file (files are
streamed chunk by chunk, so it should not depend on the file's length).

    .venv/bin/python -m benchmarks.tagging [--model shortchunk_cnn] [--repeats 7] [--no-memory]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from autotag.audio.decode import iter_chunks
from autotag.config import make_config
from autotag.serving.tagger import Tagger
from tests.serving.test_inference import _with_trained_statistics

LABELS = [f"tag{i:02d}" for i in range(50)]


def save_checkpoint(model: str, path: Path) -> None:
    from autotag.training.trainer import build_module  # Lightning: not in the tagging process measured

    module = build_module(make_config(data=".", model=model), LABELS)
    _with_trained_statistics(module.net)  # batch norms as training leaves them
    torch.save({"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict()}, path)


def write_noise(path: Path, minutes: float, rate: int = 16000, channels: int = 1) -> None:
    rng = np.random.default_rng(0)
    with sf.SoundFile(str(path), "w", samplerate=rate, channels=channels, subtype="PCM_16") as f:
        for _ in range(int(minutes * 60)):
            f.write((rng.standard_normal((rate, channels)) * 0.1).astype(np.float32))


def _median_time(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def clip_figures(tagger: Tagger, path: Path, repeats: int) -> dict[str, float]:
    """Median seconds of `predict(path)` and of its parts, run as `predict` runs them (one
    chunk at a time on a CPU), and of the network as trained and of one batch of all chunks."""
    n = tagger.chunk_samples
    chunks = [np.pad(c, (0, n - len(c))) for c in iter_chunks(path, tagger.sample_rate, n)]
    x = torch.from_numpy(np.stack(chunks))
    with torch.inference_mode():
        mels = tagger.module.frontend(x)
        plain = torch.sigmoid(tagger.module.net(mels))
        fast = torch.sigmoid(torch.cat([tagger._net(m[None]) for m in mels]))
        return {
            "predict": _median_time(lambda: tagger.predict(path), repeats),
            "read": _median_time(lambda: list(iter_chunks(path, tagger.sample_rate, n)), repeats),
            "logmel": _median_time(lambda: [tagger.module.frontend(c[None]) for c in x], repeats),
            "net": _median_time(lambda: [tagger._net(m[None]) for m in mels], repeats),
            "plain net": _median_time(lambda: [tagger.module.net(m[None]) for m in mels], repeats),
            "one batch": _median_time(lambda: tagger._net(mels), repeats),
            "diff": float((fast - plain).abs().max()),
            "chunks": len(chunks),
        }


def peak_rss_mb() -> int:
    """This process's peak resident set size. Linux's VmHWM, not `ru_maxrss`: that one keeps
    the high-water mark of the process before its exec, i.e. of the forked parent (~1 GB here)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def child(checkpoint: str, audio: str) -> None:
    Tagger.from_checkpoint(checkpoint, device="cpu").predict(Path(audio))
    print(peak_rss_mb())  # MB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="shortchunk_cnn")
    parser.add_argument("--repeats", type=int, default=7, help="timed calls per figure (median)")
    parser.add_argument("--no-memory", action="store_true", help="skip the 1/10/60-minute peak-RSS figures")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        ckpt = tmp / "model.ckpt"
        save_checkpoint(args.model, ckpt)
        tagger = Tagger.from_checkpoint(ckpt, device="cpu")
        write_noise(tmp / "16k_mono.wav", 0.5)
        write_noise(tmp / "44k_stereo.wav", 0.5, rate=44100, channels=2)
        threads = torch.get_num_threads()
        print(f"model {args.model}, {len(LABELS)} tags, {threads} CPU threads, medians of {args.repeats}")
        for label, name in (("16 kHz mono", "16k_mono.wav"), ("44.1 kHz stereo", "44k_stereo.wav")):
            f = clip_figures(tagger, tmp / name, args.repeats)
            print(f"30 s clip, {label + ',':<16} warm: {f['predict']:6.3f} s  (target <= 0.5 s)")
            print(
                f"  {f['chunks']} chunks: read and resample {f['read']:.3f} s, log-mels {f['logmel']:.3f} s, "
                f"network {f['net']:.3f} s; the network as trained {f['plain net']:.3f} s "
                f"(max |diff| of probabilities {f['diff']:.1e}); all chunks in one batch {f['one batch']:.3f} s"
            )
        if args.no_memory:
            return
        for minutes in (1, 10, 60):
            path = tmp / f"{minutes}min.wav"
            write_noise(path, minutes)
            start = time.perf_counter()
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks.tagging", "--child", str(ckpt), str(path)],
                capture_output=True,
                text=True,
                check=True,
            )
            took = time.perf_counter() - start
            print(
                f"{minutes:2d}-minute file      : peak RSS {int(out.stdout.split()[-1]):5d} MB, {took:6.1f} s "
                f"(file {path.stat().st_size / 2**20:.0f} MB)"
            )
            path.unlink()


if __name__ == "__main__":
    main()
