"""Tagging speed and memory: a 30 s clip warm, and peak memory for 1-, 10- and 60-minute files.

The model weights do not matter for either figure, so the models are freshly initialised
and saved as checkpoints like a run's. Peak memory is the maximum resident set size of a
separate process that loads the checkpoint and tags one file (files are streamed chunk by
chunk, so it should not depend on the file's length).

    .venv/bin/python -m benchmarks.tagging [--model shortchunk_cnn]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from autotag.config import make_config
from autotag.predict import Tagger
from autotag.trainer import build_module

LABELS = [f"tag{i:02d}" for i in range(50)]


def save_checkpoint(model: str, path: Path) -> None:
    module = build_module(make_config(data=".", model=model), LABELS)
    torch.save({"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict()}, path)


def write_noise(path: Path, minutes: float, rate: int = 16000) -> None:
    rng = np.random.default_rng(0)
    with sf.SoundFile(str(path), "w", samplerate=rate, channels=1, subtype="PCM_16") as f:
        for _ in range(int(minutes * 60)):
            f.write((rng.standard_normal(rate) * 0.1).astype(np.float32))


def child(checkpoint: str, audio: str) -> None:
    Tagger.from_checkpoint(checkpoint, device="cpu").predict(Path(audio))
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)  # MB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="shortchunk_cnn")
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
        write_noise(tmp / "30s.wav", 0.5)
        tagger.predict(tmp / "30s.wav")  # warm-up
        times = []
        for _ in range(5):
            start = time.perf_counter()
            tagger.predict(tmp / "30s.wav")
            times.append(time.perf_counter() - start)
        print(f"model {args.model}, {torch.get_num_threads()} CPU threads")
        print(f"30 s clip, warm      : {statistics.median(times):6.3f} s  (target <= 0.5 s)")
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
