"""The built-in demo data sets, made on the spot: real instruments, or synthetic tones.

The default set: FluidSynth and a General MIDI soundfont (`scripts/setup.sh` installs
both) render multi-instrument pieces (`autotag.data.instruments`), tagged with the GM
families that sound in them and `fast`/`slow`, grouped into artists whose clips all land
in one split. Without FluidSynth or the soundfont, or when asked (`synthetic`), the clips
are synthetic instrument-like voices (plucked, bowed, blown, mallet, bass), drums half of
the time, at a slow (60-85 BPM) or fast (140-180 BPM) tempo; a fallback says in a warning
and in SOURCE.txt what is missing. Either way the same seed (and soundfont) gives
byte-identical files on any machine and worker count.
"""

from __future__ import annotations

import csv
import logging
import os
import shutil
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf

from autotag.data import instruments as instrument_renderer
from autotag.paths import absolute

if TYPE_CHECKING:  # the dashboard imports this module at start-up, which stays torch-free
    from autotag.data.cache import Progress

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
CLIP_SECONDS = 10.0
INSTRUMENTS = ("plucked", "bowed", "blown", "mallet", "bass")
TAGS = (*INSTRUMENTS, "drums", "fast", "slow")  # of the synthetic tones; instruments.TAGS for real ones
NOTES_FILE = "SOURCE.txt"
CLIPS_PER_ARTIST = 2
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


_renderer: instrument_renderer.Renderer | None = None


def _start_renderer(soundfont: str) -> None:
    """Pool initializer: one synth with the soundfont loaded per worker process."""
    global _renderer
    _renderer = instrument_renderer.Renderer(Path(soundfont))


def _render_clip(args: tuple[Path, instrument_renderer.ArtistStyle, np.random.SeedSequence]) -> tuple[str, ...]:
    path, style, seed_seq = args
    assert _renderer is not None, "the pool initializer loads the soundfont"
    clip = instrument_renderer.render_clip(_renderer, style, seed_seq)
    sf.write(str(path), clip.audio, SAMPLE_RATE, subtype="PCM_16")
    return clip.tags


def artist_splits(artist_tags: list[list[tuple[str, ...]]], seed: int, tries: int = 200) -> list[str]:
    """A split per artist, so no artist spans two: 80/10/10 of the artists, at least one in valid and test.

    With a few artists in valid and test, a random choice often leaves a tag out of one of
    them (unscorable); of `tries` seeded choices, the one whose rarest tag in valid or test
    has the most clips is kept (MTG-Jamendo's splits are balanced per tag as well).
    """
    n = len(artist_tags)
    n_test = n_valid = max(1, round(n * 0.1))
    tags = sorted({t for clips in artist_tags for tags in clips for t in tags})
    rng = np.random.default_rng(seed)
    best: tuple[int, list[str]] | None = None
    for _ in range(tries):
        order = rng.permutation(n)
        splits = [""] * n
        for rank, artist in enumerate(order):
            splits[artist] = "valid" if rank < n_valid else "test" if rank < n_valid + n_test else "train"
        worst = min(
            sum(t in clip for a in range(n) if splits[a] == split for clip in artist_tags[a])
            for split in ("valid", "test")
            for t in tags
        )
        if best is None or worst > best[0]:
            best = (worst, splits)
    assert best is not None
    return best[1]


def _counted(results: Iterator[list[str]], total: int, progress: Progress | None) -> list[list[str]]:
    """The clips' tags as the pool finishes them, in order, each one told to `progress`."""
    done = []
    for tags in results:
        done.append(tags)
        if progress:
            progress(len(done), total)
    return done


def _real_rows(
    tmp: Path, names: list[str], seed: int, soundfont: Path, workers: int, progress: Progress | None
) -> list[list[str]]:
    """Render the clips; rows path, tags, split, artist.

    `CLIPS_PER_ARTIST` clips per artist: enough for a group-disjoint split to matter, few
    enough that valid and test hold many artists, so their scores are not those of a
    handful of palettes.
    """
    artist_root, clip_root = np.random.SeedSequence(seed).spawn(2)
    n_artists = max(3, round(len(names) / CLIPS_PER_ARTIST))
    styles = [instrument_renderer.make_artist(np.random.default_rng(s)) for s in artist_root.spawn(n_artists)]
    artist_of = [i * n_artists // len(names) for i in range(len(names))]
    jobs = [(tmp / n, styles[a], s) for n, a, s in zip(names, artist_of, clip_root.spawn(len(names)))]
    with ProcessPoolExecutor(workers, initializer=_start_renderer, initargs=(str(soundfont),)) as pool:
        all_tags = _counted(pool.map(_render_clip, jobs, chunksize=4), len(jobs), progress)
    splits = artist_splits([[t for t, a in zip(all_tags, artist_of) if a == k] for k in range(n_artists)], seed)
    return [[n, ";".join(t), splits[a], f"artist_{a:03d}"] for n, t, a in zip(names, all_tags, artist_of)]


def _synthetic_rows(tmp: Path, names: list[str], seed: int, workers: int, progress: Progress | None) -> list[list[str]]:
    jobs = list(zip((tmp / n for n in names), np.random.SeedSequence(seed).spawn(len(names))))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        all_tags = _counted(pool.map(_write_clip, jobs, chunksize=8), len(jobs), progress)
    return [[n, ";".join(t)] for n, t in zip(names, all_tags)]


def make_demo_dataset(
    out: str | Path,
    clips: int = 300,
    seed: int = 0,
    workers: int | None = None,
    synthetic: bool = False,
    soundfont: str | Path | None = None,
    progress: Progress | None = None,
) -> Path:
    """Write `clips` demo clips, `tags.csv` (plain folder format) and a SOURCE.txt note into `out`.

    Real instruments rendered from `soundfont` (default: FluidR3_GM), or synthetic tones
    when `synthetic`. When the default soundfont cannot be used, the clips are synthetic
    tones and a warning names what is missing; a soundfont asked for by name must work,
    since a generalisation set of synthetic tones would mislead.
    The folder appears complete or not at all: clips are written into a temporary
    sibling folder that is renamed at the end. `progress` hears (clips done, clips) as they are.

    Raises:
        FileExistsError: `out` exists and is not empty.
        ValueError: `clips` is below 10 (too few for three splits), both `synthetic` and a
            `soundfont` are asked for, or the `soundfont` asked for cannot be used.
    """
    out = absolute(out)
    if clips < 10:
        raise ValueError(f"--clips must be at least 10 so every split gets clips, got {clips}")
    if synthetic and soundfont is not None:
        raise ValueError("--synthetic makes tones without a soundfont; give one of --synthetic and --soundfont")
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty; choose a new folder")
    font = absolute(soundfont) if soundfont is not None else instrument_renderer.DEFAULT_SOUNDFONT
    missing = "asked for (--synthetic)" if synthetic else instrument_renderer.unavailable(font)
    if missing and soundfont is not None:
        raise ValueError(f"cannot render with {font}: {missing}; install with {instrument_renderer.INSTALL_HINT}")
    if missing and not synthetic:
        log.warning(
            "demo set: %s, so the clips are synthetic tones, not instruments; install with %s",
            missing,
            instrument_renderer.INSTALL_HINT,
        )
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "audio").mkdir(parents=True)
    names = [f"audio/clip_{i:04d}.wav" for i in range(clips)]
    workers = workers or min(4, os.cpu_count() or 1)
    try:
        if missing:
            header, rows = ["path", "tags"], _synthetic_rows(tmp, names, seed, workers, progress)
            hint = "python -m autotag demo-data OUT" if synthetic else instrument_renderer.INSTALL_HINT
            note = f"Synthetic tones (seed {seed}): {missing}. For real instruments: {hint}.\n"
        else:
            header, rows = ["path", "tags", "split", "artist"], _real_rows(tmp, names, seed, font, workers, progress)
            note = f"Rendered with FluidSynth from {font.name} (seed {seed}); splits are disjoint by artist.\n"
        with (tmp / "tags.csv").open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            writer.writerows(rows)
        (tmp / NOTES_FILE).write_text(note, encoding="utf-8")
        if out.exists():
            out.rmdir()
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def source_note(root: Path) -> str | None:
    """What made a demo set (real instruments, or the synthetic fallback and why), if it says."""
    try:
        return (Path(root) / NOTES_FILE).read_text(encoding="utf-8", errors="replace").strip() or None
    except OSError:
        return None


def default_demo_dir() -> Path:
    """Where set-up puts the built-in demo data set: `$AUTOTAG_DEMO_DIR`, else `./data/demo`, absolute."""
    return absolute(os.environ.get("AUTOTAG_DEMO_DIR", "data/demo"))
