"""Library tagging throughput: `tag --out` against a one-process loop, on the same files in one run.

Makes `--clips` clips of `--seconds` s (default 500 of 30 s) in a temporary folder, in
turn WAV (44.1 kHz stereo, 16-bit), FLAC (44.1 kHz stereo), Ogg Vorbis (48 kHz stereo)
and MP3 (44.1 kHz stereo): a few drifting harmonic tones over quiet noise, so that the
codecs have music-like work to do. A model's weights do not change its speed, so the
model is freshly initialised (`--model`, default the quick demo's `tiny`) and saved as a
checkpoint, as `benchmarks.tagging` does.

Then, in this process, with the same Tagger:

- the one-process loop: each file decoded and scored in turn (`Tagger.predict(path)`, what
  `autotag tag FILE ...` does), torch with `--loop-threads` threads (default 1: on our
  2-core machine, busy with other work, torch's default of 2 made the loop 4-5 times
  slower, which would flatter the library; `--loop-threads 0` keeps torch's default);
- the library: `autotag.library.tag.tag_library` into a new SQLite library, as
  `autotag tag --run RUN DIR --recursive --out lib.sqlite` runs it (`--workers`
  decoder processes; default one per core, at most 4).

Prints files per minute of each and their ratio, and the resident memory of this process
and of its decoder processes at each tenth of the library's files (memory flat in the
number of files: the last tenth should hold what the first did). `--order library-first`
runs the library first (the page cache then favours the loop).

    .venv/bin/python -m benchmarks.library [--clips 500] [--seconds 30] [--model tiny] [--workers N]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import soundfile as sf
import torch

from autotag.library.store import open_library
from autotag.library.tag import default_workers, library_meta, tag_library
from autotag.serving.tagger import Tagger
from benchmarks.tagging import save_checkpoint

#: (suffix, sample rate, channels) of the clips, in turn.
KINDS = (("wav", 44100, 2), ("flac", 44100, 2), ("ogg", 48000, 2), ("mp3", 44100, 2))


def write_clips(folder: Path, clips: int, seconds: float, seed: int = 0) -> list[Path]:
    """`clips` files in `folder`, in subfolders of 100 as a library has albums."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(clips):
        suffix, rate, channels = KINDS[i % len(KINDS)]
        t = np.arange(int(seconds * rate)) / rate
        wave = 0.02 * rng.standard_normal(len(t))
        for _ in range(3):
            f0 = rng.uniform(80, 900) * (1 + 0.02 * np.sin(2 * np.pi * rng.uniform(0.1, 1) * t))
            wave += rng.uniform(0.05, 0.2) * np.sin(2 * np.pi * np.cumsum(f0) / rate) * (rng.uniform() < 0.9)
        stereo = np.stack([wave, np.roll(wave, rate // 100)], axis=1)[:, :channels].astype(np.float32)
        path = folder / f"album{i // 100:03d}" / f"clip{i:05d}.{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, stereo, rate, subtype="PCM_16" if suffix == "wav" else None)
        paths.append(path)
    return paths


def memory_mb() -> tuple[float, float]:
    """Resident memory of this process and of all its children (the decoders), in MB."""
    me = psutil.Process()
    children = sum(c.memory_info().rss for c in me.children(recursive=True) if c.is_running())
    return me.memory_info().rss / 2**20, children / 2**20


def one_process_loop(tagger: Tagger, files: list[Path]) -> float:
    start = time.perf_counter()
    for path in files:
        tagger.predict(path)
    return time.perf_counter() - start


def library(tagger: Tagger, folder: Path, out: Path, workers: int) -> tuple[float, list[tuple[int, float, float]]]:
    """Seconds to tag `folder` into a new library at `out`, and (files done, MB here, MB in
    decoders) at each tenth of the files."""
    thresholds = dict.fromkeys(tagger.labels, 0.5)
    total = sum(1 for _ in folder.rglob("clip*"))
    marks: list[tuple[int, float, float]] = []

    def progress(done: int, _total: int) -> None:
        if done * 10 // total != (done - 1) * 10 // total or done == 1:
            marks.append((done, *memory_mb()))

    start = time.perf_counter()
    with open_library(out, library_meta(tagger, out.parent, thresholds), resume=False) as lib:
        summary = tag_library(tagger, lib, [folder], thresholds, workers=workers, progress=progress, total=total)
    took = time.perf_counter() - start
    assert summary.tagged == total and not summary.failed, summary
    return took, marks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--order", choices=("loop-first", "library-first"), default="loop-first")
    parser.add_argument("--loop-threads", type=int, default=1, help="torch threads of the loop (0: torch's default)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        ckpt = tmp / "model.ckpt"
        save_checkpoint(args.model, ckpt)
        tagger = Tagger.from_checkpoint(ckpt, device="cpu")
        start = time.perf_counter()
        files = write_clips(tmp / "music", args.clips, args.seconds)
        size = sum(p.stat().st_size for p in files) / 2**20
        print(
            f"{args.clips} clips of {args.seconds:g} s ({', '.join(k[0] for k in KINDS)} in turn; {size:.0f} MB) "
            f"written in {time.perf_counter() - start:.0f} s; model {args.model}; {os.cpu_count()} cores, "
            f"load average {os.getloadavg()[0]:.1f}"
        )
        tagger.predict(files[0])  # warm-up: first-call costs belong to neither side
        runs = {}
        for side in ("loop", "library") if args.order == "loop-first" else ("library", "loop"):
            if side == "loop":
                default_threads = torch.get_num_threads()
                torch.set_num_threads(args.loop_threads or default_threads)
                runs["loop"] = one_process_loop(tagger, files), []
                torch.set_num_threads(default_threads)
            else:
                runs["library"] = library(tagger, tmp / "music", tmp / "lib.sqlite", args.workers)
        (loop_s, _), (library_s, marks) = runs["loop"], runs["library"]
        per_min = {k: args.clips / s * 60 for k, (s, _) in runs.items()}
        threads = args.loop_threads or torch.get_num_threads()
        print(f"one-process loop ({threads} torch threads): {loop_s:7.1f} s  {per_min['loop']:7.0f} files/min")
        print(
            f"library ({args.workers} decoders): {library_s:7.1f} s  {per_min['library']:7.0f} files/min  "
            f"ratio {per_min['library'] / per_min['loop']:.2f}x (target >= 1.7x)"
        )
        print("memory while tagging the library (files done: MB in this process + MB in its decoders):")
        print("  " + ", ".join(f"{done}: {me:.0f} + {kids:.0f}" for done, me, kids in marks))
        print(f"  peak: this process {max(m[1] for m in marks):.0f} MB, decoders {max(m[2] for m in marks):.0f} MB")
        print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
