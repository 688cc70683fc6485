"""The built-in demo data set: synthesized multi-label clips, made on the spot.

Each clip mixes one to three instrument-like voices (plucked, bowed, blown, mallet,
bass), drums half of the time, at a slow (60-85 BPM) or fast (140-180 BPM) tempo. Every
tag is audible: timbre decides the instrument tags, note and drum onsets the tempo tag.
The same seed gives byte-identical files on any machine and worker count.
"""

from __future__ import annotations

import csv
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf

from autotag.paths import absolute

SAMPLE_RATE = 16000
CLIP_SECONDS = 10.0
INSTRUMENTS = ("plucked", "bowed", "blown", "mallet", "bass")
TAGS = (*INSTRUMENTS, "drums", "fast", "slow")
_MAJOR = np.array([0, 2, 4, 5, 7, 9, 11])


def _envelope(n: int, attack: float, decay: float, sr: int = SAMPLE_RATE) -> np.ndarray:
    t = np.arange(n) / sr
    return np.minimum(t / max(attack, 1e-4), 1.0) * np.exp(-t * decay)


def _note(kind: str, f0: float, dur: float, rng: np.random.Generator) -> np.ndarray:
    """One note of `kind`, shape (samples,), peak about 1."""
    n = int(dur * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    if kind == "plucked":  # bright attack, upper harmonics die first
        k = np.arange(1, 11)[:, None]
        out = (np.sin(2 * np.pi * f0 * k * t) / k * np.exp(-t * (2.0 + 1.5 * k))).sum(0)
    elif kind == "bowed":  # sawtooth-like, vibrato, slow attack, sustained
        phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.006 * np.sin(2 * np.pi * 5.5 * t))) / SAMPLE_RATE
        k = np.arange(1, 16)[:, None]
        out = (np.sin(k * phase) / k).sum(0) * _envelope(n, 0.12, 0.3) * np.minimum(1, (n - np.arange(n)) / 800)
    elif kind == "blown":  # near-sine with breath noise
        tone = np.sin(2 * np.pi * f0 * t) + 0.15 * np.sin(4 * np.pi * f0 * t)
        breath = np.convolve(rng.standard_normal(n), np.ones(8) / 8, mode="same") * 0.25
        out = (tone + breath) * _envelope(n, 0.06, 0.5) * np.minimum(1, (n - np.arange(n)) / 400)
    elif kind == "mallet":  # inharmonic partials, fast decay
        partials = ((1.0, 1.0), (3.9, 0.4), (9.2, 0.15))
        out = sum(a * np.sin(2 * np.pi * f0 * r * t) * np.exp(-t * (8 + 6 * r)) for r, a in partials)
    elif kind == "bass":  # low, round, plucked
        k = np.arange(1, 6)[:, None]
        out = (np.sin(2 * np.pi * f0 * k * t) / k**1.5 * np.exp(-t * (1.5 + k))).sum(0)
    else:
        raise ValueError(f"unknown instrument {kind!r}")
    return out / (np.abs(out).max() + 1e-9)


def _drum_hit(kind: str, rng: np.random.Generator) -> np.ndarray:
    n = int(0.3 * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    if kind == "kick":  # pitch sweep 150 -> 50 Hz
        f = 50 + 100 * np.exp(-t * 30)
        return np.sin(2 * np.pi * np.cumsum(f) / SAMPLE_RATE) * np.exp(-t * 12)
    noise = rng.standard_normal(n)
    if kind == "snare":
        return (0.7 * noise + 0.5 * np.sin(2 * np.pi * 185 * t)) * np.exp(-t * 20)
    return np.diff(noise, prepend=0.0) * 0.4 * np.exp(-t * 90)  # hi-hat: high-passed noise


def _add(out: np.ndarray, sig: np.ndarray, start: float, gain: float) -> None:
    i = int(start * SAMPLE_RATE)
    if i >= len(out):
        return
    seg = sig[: len(out) - i]
    out[i : i + len(seg)] += gain * seg


def synthesize_clip(seed_seq: np.random.SeedSequence) -> tuple[np.ndarray, tuple[str, ...]]:
    """One demo clip: (samples,) float32 at 16 kHz, and its tags."""
    rng = np.random.default_rng(seed_seq)
    fast = rng.random() < 0.5
    bpm = rng.uniform(140, 180) if fast else rng.uniform(60, 85)
    beat = 60.0 / bpm
    voices = list(rng.choice(INSTRUMENTS, size=rng.integers(1, 4), replace=False))
    drums = rng.random() < 0.5
    root = rng.uniform(0, 12)
    out = np.zeros(int(CLIP_SECONDS * SAMPLE_RATE))
    registers = {"plucked": 60, "bowed": 57, "blown": 72, "mallet": 67, "bass": 33}
    for kind in voices:
        step = beat * (2 if kind in ("bowed", "blown") and not fast else 1)
        gain = rng.uniform(0.5, 1.0)
        t = rng.uniform(0, beat)
        while t < CLIP_SECONDS:
            degree = _MAJOR[rng.integers(0, 7)] + 12 * rng.integers(0, 2)
            f0 = 440 * 2 ** ((registers[kind] + root + degree - 69) / 12)
            _add(out, _note(kind, f0, step * 0.95, rng), t, gain)
            t += step
    if drums:
        hits = [("kick", 0), ("snare", 1), ("kick", 2), ("snare", 3)]
        for bar in range(int(CLIP_SECONDS / (4 * beat)) + 1):
            for kind, pos in hits:
                _add(out, _drum_hit(kind, rng), (4 * bar + pos) * beat, 0.8)
            for eighth in range(8):
                _add(out, _drum_hit("hat", rng), (4 * bar + eighth / 2) * beat, 0.3)
    out /= np.abs(out).max() + 1e-9
    out = out * rng.uniform(0.3, 0.9) + rng.standard_normal(len(out)) * 10 ** (-50 / 20)
    tags = tuple(t for t in TAGS if t in voices) + (("drums",) if drums else ()) + (("fast",) if fast else ("slow",))
    return out.astype(np.float32), tags


def _write_clip(args: tuple[Path, np.random.SeedSequence]) -> tuple[str, ...]:
    path, seed_seq = args
    audio, tags = synthesize_clip(seed_seq)
    sf.write(str(path), audio, SAMPLE_RATE, subtype="PCM_16")
    return tags


def make_demo_dataset(out: str | Path, clips: int = 300, seed: int = 0, workers: int | None = None) -> Path:
    """Write `clips` synthesized clips and `tags.csv` (plain folder format) into `out`.

    The folder appears complete or not at all: clips are written into a temporary
    sibling folder that is renamed at the end.

    Raises:
        FileExistsError: `out` exists and is not empty.
        ValueError: `clips` is below 10 (too few for three splits).
    """
    out = absolute(out)
    if clips < 10:
        raise ValueError(f"--clips must be at least 10 so every split gets clips, got {clips}")
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty; choose a new folder")
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "audio").mkdir(parents=True)
    names = [f"audio/clip_{i:04d}.wav" for i in range(clips)]
    jobs = list(zip((tmp / n for n in names), np.random.SeedSequence(seed).spawn(clips)))
    workers = workers or min(4, os.cpu_count() or 1)
    try:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            all_tags = list(pool.map(_write_clip, jobs, chunksize=8))
        with (tmp / "tags.csv").open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["path", "tags"])
            writer.writerows([name, ";".join(tags)] for name, tags in zip(names, all_tags))
        if out.exists():
            out.rmdir()
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def default_demo_dir() -> Path:
    """Where set-up puts the built-in demo data set: `$AUTOTAG_DEMO_DIR`, else `./data/demo`, absolute."""
    return absolute(os.environ.get("AUTOTAG_DEMO_DIR", "data/demo"))
