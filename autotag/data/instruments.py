"""Real instrument sounds for the demo set: compose a short piece, render it with FluidSynth, mix it.

The synthetic tones in `autotag.data.demo` teach a model nothing about recordings, so the
demo set plays random multi-instrument pieces through a General MIDI soundfont instead:

- compose: a key, scale, tempo, meter and chord progression; parts with roles (chords,
  melody, bass line, drum groove with fills), GM programs drawn at random within the
  family, humanised timing and velocity, some parts entering late;
- render: libfluidsynth through `pyfluidsynth`, one synth per worker process, notes
  switched at exact sample positions (no MIDI files), FluidSynth's reverb and chorus;
- mix: mono, a random EQ, background noise at a random SNR, a random level.

A clip's tags are the families that sound for at least `AUDIBLE_SECONDS` in it, plus
`fast` (>= 120 BPM) or `slow` (< 90 BPM); 90-119 BPM gets no tempo tag, as in real tag sets.
Clips come from "artists" that share a palette of instruments, a tempo range and a
production sound, so a group-disjoint split tests on artists the model never heard.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SAMPLE_RATE = 16000
RENDER_RATE = 32000  # FluidSynth at 16 kHz aliases the soundfont's high partials; halved by FFT below
CLIP_SECONDS = 10.0
AUDIBLE_SECONDS = 2.0
FAST_BPM, SLOW_BPM = 120.0, 90.0
SOUNDFONT_DIR = Path("/usr/share/sounds/sf2")
DEFAULT_SOUNDFONT = SOUNDFONT_DIR / "FluidR3_GM.sf2"  # Debian fluid-soundfont-gm: the demo set
OTHER_SOUNDFONT = SOUNDFONT_DIR / "TimGM6mb.sf2"  # Debian timgm6mb-soundfont: sounds the model never heard
INSTALL_HINT = "bash scripts/setup.sh (Debian packages libfluidsynth3 fluid-soundfont-gm timgm6mb-soundfont)"

# GM programs (0-based) per family and role; a clip draws one at random, so a program listed
# twice is drawn twice as often (most piano in tagged music is an acoustic grand, not an
# electric piano). Instruments whose plain-word family is ambiguous (harpsichord, accordion,
# pizzicato, choir pads) are left out.
FAMILIES: dict[str, dict[str, tuple[int, ...]]] = {
    "piano": {"chords": (0, 0, 0, 1, 1, 2, 3, 4, 5), "melody": (0, 0, 0, 1, 1, 2, 4, 5)},
    "organ": {"chords": (16, 17, 18, 19, 20), "melody": (16, 17, 18)},
    "guitar": {"chords": (24, 25, 26, 27, 29, 30), "melody": (24, 25, 26, 27, 29, 30)},
    "strings": {"chords": (44, 48, 49, 50), "melody": (40, 41, 42)},
    "brass": {"chords": (61, 62), "melody": (56, 57, 58, 59, 60)},
    "reed": {"melody": (64, 65, 66, 67, 68, 69, 70, 71)},
    "flute": {"melody": (72, 73, 74, 75, 77, 79)},
    "synth": {"chords": (88, 89, 90, 94, 95), "melody": (80, 81, 84, 87)},
    "bass": {"bass": (32, 33, 34, 35, 36, 37, 38)},
}
MELODIC = ("piano", "organ", "guitar", "strings", "brass", "reed", "flute", "synth")
# How often each family joins an artist's palette: guitar and piano lead the instrument tags
# of MagnaTagATune and MTG-Jamendo, wind instruments trail.
PALETTE_WEIGHTS = {
    "piano": 0.2,
    "organ": 0.1,
    "guitar": 0.18,
    "strings": 0.14,
    "brass": 0.09,
    "reed": 0.09,
    "flute": 0.08,
    "synth": 0.12,
}
SOLO_P = 0.15  # clips of one instrument alone (both hands of a piano, a guitar strumming and picking)
DRUM_KITS = (0, 8, 16, 24, 25, 32, 40)  # standard, room, power, electronic, TR-808, jazz, brush
TAGS = (*FAMILIES, "drums", "fast", "slow")
_REGISTER = {  # lowest and highest melody key per family
    "piano": (60, 84),
    "organ": (60, 84),
    "guitar": (55, 79),
    "strings": (62, 88),
    "brass": (55, 77),
    "reed": (55, 79),
    "flute": (72, 96),
    "synth": (60, 84),
}
_SCALES = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
}
_PROGRESSIONS = {  # scale degrees (0-based), one chord per bar
    "major": ((0, 4, 5, 3), (0, 5, 3, 4), (1, 4, 0, 0), (0, 3, 0, 4), (5, 3, 0, 4)),
    "minor": ((0, 5, 2, 6), (0, 3, 4, 0), (0, 6, 5, 6), (0, 3, 6, 2)),
    "dorian": ((0, 3, 0, 3), (0, 6, 3, 0)),
    "mixolydian": ((0, 6, 3, 0), (0, 3, 6, 0)),
}
_KICK, _SNARE, _STICK, _CLAP, _HAT, _PEDAL, _OPEN, _CRASH, _RIDE = 36, 38, 37, 39, 42, 44, 46, 49, 51
_TOMS = (50, 48, 47, 45, 43, 41)
# One bar of 16th steps (4/4) or 12 steps (3/4): (key, step, velocity).
_GROOVES: dict[str, tuple[tuple[int, int, int], ...]] = {
    "rock": ((_KICK, 0, 110), (_KICK, 8, 100), (_KICK, 10, 80), (_SNARE, 4, 110), (_SNARE, 12, 110))
    + tuple((_HAT, s, 90 if s % 4 == 0 else 65) for s in range(0, 16, 2)),
    "four": tuple((_KICK, s, 115) for s in (0, 4, 8, 12))
    + ((_CLAP, 4, 100), (_CLAP, 12, 100))
    + tuple((_OPEN, s, 80) for s in (2, 6, 10, 14))
    + tuple((_HAT, s, 60) for s in (1, 3, 5, 7, 9, 11, 13, 15)),
    "half": ((_KICK, 0, 110), (_KICK, 10, 85), (_SNARE, 8, 115))
    + tuple((_HAT, s, 85 if s % 4 == 0 else 60) for s in range(0, 16, 2)),
    "funk": ((_KICK, 0, 110), (_KICK, 3, 85), (_KICK, 10, 95), (_SNARE, 4, 110), (_SNARE, 12, 110))
    + ((_SNARE, 7, 35), (_SNARE, 9, 30), (_SNARE, 15, 35))
    + tuple((_HAT, s, 80 if s % 2 == 0 else 50) for s in range(16)),
    "swing": ((_KICK, 0, 70), (_PEDAL, 4, 70), (_PEDAL, 12, 70), (_STICK, 12, 60))
    + tuple((_RIDE, s, 90 if s % 4 == 0 else 70) for s in (0, 4, 6, 8, 12, 14)),
    "waltz": ((_KICK, 0, 105), (_SNARE, 4, 85), (_SNARE, 8, 85)) + tuple((_HAT, s, 70) for s in range(0, 12, 2)),
}


@dataclass(frozen=True)
class Note:
    """One note in seconds from the piece's start (the clip starts at `Piece.preroll`)."""

    start: float
    end: float
    key: int
    velocity: int


@dataclass
class Part:
    """One instrument on one MIDI channel: what it plays and how loud it sits in the mix."""

    family: str  # a FAMILIES key or "drums"
    role: str  # chords, melody, bass or groove
    program: int  # GM program (bank 0), or drum kit (bank 128)
    notes: list[Note]
    volume: int  # MIDI CC7
    reverb: int  # MIDI CC91 send
    chorus: int  # MIDI CC93 send


@dataclass
class Piece:
    """A composed clip: tempo, parts and production settings, everything `render` needs."""

    bpm: float
    meter: int  # beats per bar
    key: int  # tonic pitch class
    scale: str
    parts: list[Part]
    preroll: float  # seconds rendered before the clip, so it starts mid-performance
    room: tuple[float, float, float]  # FluidSynth reverb room size, damping, level
    eq: tuple[float, float, float]  # tilt in dB per octave around 1 kHz, low cut Hz, high cut Hz
    snr_db: float
    pink_noise: bool
    peak_db: float


@dataclass(frozen=True)
class ArtistStyle:
    """What an artist's clips share: instrument palette, tempo range, production."""

    palette: tuple[str, ...]
    drums_p: float
    bass_p: float
    bpm_range: tuple[float, float]
    scales: tuple[str, ...]
    room: tuple[float, float, float]
    tilt_db: float
    swing: float
    noise_db: float


def make_artist(rng: np.random.Generator) -> ArtistStyle:
    """A random artist; its clips vary around these choices."""
    band = rng.choice(3, p=(0.35, 0.3, 0.35))
    bpm_range = ((62.0, 89.0), (90.0, 119.0), (120.0, 170.0))[band]
    drums_p = float(rng.choice((0.15, 0.5, 0.85)))
    return ArtistStyle(
        palette=tuple(
            str(f)
            for f in rng.choice(
                MELODIC, size=int(rng.integers(3, 5)), replace=False, p=[PALETTE_WEIGHTS[f] for f in MELODIC]
            )
        ),
        drums_p=drums_p,
        bass_p=float(np.clip(drums_p + rng.uniform(-0.3, 0.2), 0.1, 0.9)),
        bpm_range=bpm_range,
        scales=tuple(str(s) for s in rng.choice(list(_SCALES), size=2, replace=False)),
        room=(float(rng.uniform(0.2, 0.9)), float(rng.uniform(0.1, 0.7)), float(rng.uniform(0.2, 0.8))),
        tilt_db=float(rng.uniform(-2.0, 1.5)),
        swing=float(rng.choice((0.0, 0.0, 0.12))),
        noise_db=float(rng.uniform(22.0, 50.0)),
    )


class _Composer:
    """Builds one Piece; holds the clip's grid so the role methods stay short."""

    def __init__(self, rng: np.random.Generator, style: ArtistStyle) -> None:
        self.rng = rng
        self.style = style
        lo, hi = style.bpm_range
        # Half the clips keep the artist's tempo band: tempo is a trait of a clip, not a proxy for an artist.
        self.bpm = float(rng.uniform(lo, hi)) if rng.random() < 0.5 else float(rng.uniform(62.0, 170.0))
        self.meter = 3 if rng.random() < 0.12 else 4
        self.beat = 60.0 / self.bpm
        self.bar = self.beat * self.meter
        self.preroll = float(rng.uniform(0.0, self.bar * 2))
        self.end = self.preroll + CLIP_SECONDS + 0.5
        self.scale = str(rng.choice(style.scales))
        self.key = int(rng.integers(0, 12))
        self.degrees = _PROGRESSIONS[self.scale][rng.integers(0, len(_PROGRESSIONS[self.scale]))]
        self.swing = style.swing

    def n_bars(self) -> int:
        return int(np.ceil(self.end / self.bar))

    def time(self, bar: int, step: float, steps_per_beat: int = 4) -> float:
        """Onset of a 16th step in a bar, swung (odd 8ths late) when the artist swings."""
        eighth, rest = divmod(step * 2 / steps_per_beat, 1.0)
        swing = self.swing * self.beat if eighth % 2 == 1 and rest == 0 else 0.0
        return bar * self.bar + step * self.beat / steps_per_beat + swing

    def chord(self, bar: int) -> list[int]:
        """Pitch classes (root, third, fifth, maybe seventh) of the bar's chord, root first."""
        scale = _SCALES[self.scale]
        d = self.degrees[bar % len(self.degrees)]
        size = 4 if self.rng.random() < 0.3 else 3
        return [(self.key + scale[(d + 2 * i) % 7]) % 12 for i in range(size)]

    def human(self, t: float, sigma: float) -> float:
        return t + float(self.rng.normal(0.0, sigma))

    def velocity(self, base: int, accent: float = 0.0) -> int:
        return int(np.clip(base + accent + self.rng.normal(0.0, 7.0), 20, 127))

    def chords(self, family: str) -> list[Note]:
        """Comping: sustained, pulsed, rhythmic stabs, arpeggios or strums, per bar's chord."""
        rng = self.rng
        styles = {
            "piano": ("pulse", "stabs", "arpeggio", "sustain"),
            "organ": ("sustain", "pulse", "stabs"),
            "guitar": ("strum", "arpeggio", "stabs"),
            "strings": ("sustain",),
            "brass": ("stabs", "sustain"),
            "synth": ("sustain", "pulse"),
        }[family]
        style = str(rng.choice(styles))
        base = int(rng.integers(55, 95))
        notes: list[Note] = []
        low = int(rng.integers(50, 58))
        for bar in range(self.n_bars()):
            pcs = self.chord(bar)
            keys = sorted(low + (pc - low) % 12 for pc in pcs)
            if style == "sustain":
                onsets, length = [0.0], self.bar * 0.98
            elif style == "pulse":
                onsets, length = [float(4 * b) for b in range(self.meter)], self.beat * 0.85
            elif style == "stabs":
                pattern = rng.choice(self.meter * 4 // 2, size=int(rng.integers(2, 5)), replace=False)
                onsets, length = sorted(float(2 * s) for s in pattern), self.beat * 0.4
            elif style == "arpeggio":
                seq = keys + [k + 12 for k in keys]
                for i in range(self.meter * 2):
                    t = self.human(self.time(bar, 2 * i), 0.008)
                    notes.append(Note(t, t + self.beat * 0.9, seq[i % len(seq)], self.velocity(base, 8 * (i == 0))))
                continue
            else:  # strum: down on beats, up on some offbeats, strings spread a few ms apart
                onsets = [float(2 * i) for i in range(self.meter * 2) if i % 2 == 0 or rng.random() < 0.5]
                length = self.beat * 0.9
            for step in onsets:
                t0 = self.human(self.time(bar, step), 0.01)
                up = style == "strum" and step % 4 != 0
                spread = float(rng.uniform(0.008, 0.02)) if style == "strum" else 0.0
                order = keys[::-1] if up else keys
                for i, k in enumerate(order):
                    t = t0 + i * spread
                    notes.append(Note(t, t0 + length, k, self.velocity(base - 10 * up, 6 * (step == 0))))
        return notes

    def melody(self, family: str) -> list[Note]:
        """Phrases of a random walk on the scale, chord tones on strong beats, rests between."""
        rng = self.rng
        lo, hi = _REGISTER[family]
        scale = _SCALES[self.scale]
        pitches = [k for k in range(lo, hi + 1) if (k - self.key) % 12 in scale]
        idx = len(pitches) // 2
        base = int(rng.integers(70, 105))
        durations = (2, 4, 4, 8) if self.bpm < SLOW_BPM else (4, 4, 8, 8, 16) if self.bpm >= FAST_BPM else (2, 4, 8)
        legato = 0.95 if family in ("strings", "brass", "reed", "flute", "organ", "synth") else 0.8
        notes: list[Note] = []
        step, total = 0, self.n_bars() * self.meter * 4
        while step < total:
            phrase_end = step + int(rng.integers(4, 9)) * 4
            while step < min(phrase_end, total):
                d = int(rng.choice(durations))
                bar, s = divmod(step, self.meter * 4)
                if s % 4 == 0:
                    pcs = self.chord(bar)
                    near = [i for i, p in enumerate(pitches) if p % 12 in pcs and abs(i - idx) <= 3]
                    idx = int(rng.choice(near)) if near else idx
                else:
                    idx = int(np.clip(idx + rng.choice((-2, -1, -1, 1, 1, 2)), 0, len(pitches) - 1))
                t = self.human(self.time(bar, s), 0.012)
                notes.append(Note(t, t + d * self.beat / 4 * legato, pitches[idx], self.velocity(base, 6 * (s == 0))))
                step += d
            step += int(rng.integers(2, 9)) * 2  # breathe
        return notes

    def bass(self, groove: list[Note] | None) -> list[Note]:
        """Roots and fifths: on the kick when there are drums, else whole, half or 8th notes."""
        rng = self.rng
        style = str(rng.choice(("kick", "kick", "eighths")) if groove else rng.choice(("whole", "half", "walk")))
        base = int(rng.integers(80, 110))
        kicks = sorted({n.start for n in groove or [] if n.key == _KICK})
        every = {"whole": self.meter * 4, "half": self.meter * 2, "eighths": 2, "walk": 4}.get(style, 4)
        steps, length = range(0, self.meter * 4, every), every * self.beat / 4
        notes: list[Note] = []
        for bar in range(self.n_bars()):
            root = self.chord(bar)[0]
            key = 28 + (root - 4) % 12  # E1..D#2
            fifth = key + 7
            if style == "kick":
                t0, t1 = bar * self.bar, (bar + 1) * self.bar
                onsets = [k for k in kicks if t0 - 0.03 <= k < t1 - 0.03] or [t0]
                for i, t in enumerate(onsets):
                    end = onsets[i + 1] if i + 1 < len(onsets) else t1
                    notes.append(Note(t + 0.004, t + (end - t) * 0.9, key, self.velocity(base)))
                continue
            for i, s in enumerate(steps):
                k = fifth if style in ("half", "walk") and i % 2 == 1 else key
                if style == "eighths" and i % 4 == 3 and rng.random() < 0.4:
                    k = key + 12
                t = self.human(self.time(bar, s), 0.008)
                notes.append(Note(t, t + length * 0.9, k, self.velocity(base, 6 * (s == 0))))
        return notes

    def groove(self) -> list[Note]:
        """A groove for the tempo and meter, crashes on phrase starts, fills before them."""
        rng = self.rng
        if self.meter == 3:
            name = "waltz"
        elif self.swing > 0:
            name = "swing"
        else:
            names = ("half", "rock", "funk") if self.bpm < SLOW_BPM else ("rock", "four", "funk", "half")
            name = str(rng.choice(names))
        pattern = _GROOVES[name]
        ride = rng.random() < 0.25
        phrase = int(rng.choice((2, 4)))
        notes: list[Note] = []
        for bar in range(self.n_bars()):
            fill = bar % phrase == phrase - 1 and rng.random() < 0.6
            fill_from = self.meter * 4 - int(rng.choice((4, 8))) if fill else 99
            for key, step, vel in pattern:
                if step >= fill_from or step >= self.meter * 4:
                    continue
                key = _RIDE if ride and key == _HAT else key
                if key in (_HAT, _RIDE, _OPEN) and step % 4 != 0 and rng.random() < 0.08:
                    continue  # the drummer's hand is not a sequencer
                t = self.human(self.time(bar, step), 0.004)
                notes.append(Note(t, t + 0.2, key, self.velocity(vel)))
            if bar % phrase == 0 and bar > 0:
                t = self.human(bar * self.bar, 0.004)
                notes.append(Note(t, t + 0.2, _CRASH, self.velocity(105)))
            if fill:
                toms = list(_TOMS[int(rng.integers(0, 2)) :])
                for i, step in enumerate(range(fill_from, self.meter * 4)):
                    key = _SNARE if rng.random() < 0.35 else toms[min(i * len(toms) // 8, len(toms) - 1)]
                    t = self.human(self.time(bar, step), 0.005)
                    notes.append(Note(t, t + 0.2, key, self.velocity(80 + 4 * i)))
        return notes


def _late(notes: list[Note], rng: np.random.Generator, preroll: float, bar: float) -> list[Note]:
    """Drop the notes before a bar line 1.5-6 s into the clip: the instrument enters late."""
    entry = preroll + float(rng.uniform(1.5, 6.0))
    entry = np.floor(entry / bar) * bar
    return [n for n in notes if n.start >= entry - 0.05]


def compose(rng: np.random.Generator, style: ArtistStyle) -> Piece:
    """A random piece in the artist's style: 1-3 melodic parts, maybe bass, maybe drums; or a solo.

    A solo is one instrument alone, playing chords and a melody at once when its family
    comps (a pianist's two hands): the clean examples of a timbre that real collections
    have plenty of, and that a mix of four instruments never gives.
    """
    c = _Composer(rng, style)
    parts = _solo(c, str(rng.choice(style.palette))) if rng.random() < SOLO_P else _band(c, style)
    return _produce(c, style, parts)


def _solo(c: _Composer, family: str) -> list[Part]:
    """One instrument: chords and a melody (on the same program where it plays both) when the family comps."""
    programs = FAMILIES[family]
    program = int(c.rng.choice(programs["melody"]))
    parts = [Part(family, "melody", program, c.melody(family), 0, 0, 0)]
    if "chords" in programs:
        comp = program if program in programs["chords"] else int(c.rng.choice(programs["chords"]))
        parts.insert(0, Part(family, "chords", comp, c.chords(family), 0, 0, 0))
    return parts


def _band(c: _Composer, style: ArtistStyle) -> list[Part]:
    """1-3 melodic parts from the palette (sometimes beyond it), maybe bass, maybe drums."""
    rng = c.rng
    n_melodic = int(rng.choice((1, 2, 3), p=(0.3, 0.45, 0.25)))
    families: list[str] = []
    while len(families) < n_melodic:
        pool = style.palette if rng.random() < 0.8 else MELODIC
        family = str(rng.choice(pool))
        if family not in families:
            families.append(family)
    has_drums = rng.random() < style.drums_p
    has_bass = rng.random() < style.bass_p
    comping = [f for f in families if "chords" in FAMILIES[f]]
    chord_family = str(rng.choice(comping)) if comping and (len(families) > 1 or rng.random() < 0.5) else None
    parts: list[Part] = []
    groove = c.groove() if has_drums else None
    if groove is not None:
        parts.append(Part("drums", "groove", int(rng.choice(DRUM_KITS)), groove, 0, 0, 0))
    if has_bass:
        parts.append(Part("bass", "bass", int(rng.choice(FAMILIES["bass"]["bass"])), c.bass(groove), 0, 0, 0))
    for family in families:
        role = "chords" if family == chord_family else "melody"
        notes = c.chords(family) if role == "chords" else c.melody(family)
        parts.append(Part(family, role, int(rng.choice(FAMILIES[family][role])), notes, 0, 0, 0))
    return parts


def _produce(c: _Composer, style: ArtistStyle, parts: list[Part]) -> Piece:
    """Mix and master the parts: late entries, levels, sends, EQ, noise."""
    rng = c.rng
    for i, part in enumerate(parts):
        if i > 0 and rng.random() < 0.25:
            part.notes = _late(part.notes, rng, c.preroll, c.bar)
        part.volume = int(rng.integers(85, 128)) if part.role in ("melody", "groove") else int(rng.integers(70, 118))
        part.reverb = int(rng.integers(10, 90))
        part.chorus = int(rng.integers(0, 60)) if rng.random() < 0.5 else 0
    tilt = style.tilt_db + float(rng.normal(0, 0.5))
    low_cut = float(rng.choice((20.0, 60.0, 120.0)))
    high_cut = float(rng.choice((7800.0, 7800.0, 6000.0, 4500.0)))
    return Piece(
        bpm=c.bpm,
        meter=c.meter,
        key=c.key,
        scale=c.scale,
        parts=parts,
        preroll=c.preroll,
        room=tuple(float(np.clip(v + rng.normal(0, 0.05), 0.0, 1.0)) for v in style.room),  # type: ignore[arg-type]
        eq=(tilt, low_cut, high_cut),
        snr_db=style.noise_db + float(rng.normal(0, 3)),
        pink_noise=bool(rng.random() < 0.6),
        peak_db=float(rng.uniform(-9.0, -1.0)),
    )


def sounding_seconds(part: Part, preroll: float) -> float:
    """How long the part sounds inside the clip: the union of its notes, each at least 0.5 s."""
    total, reach = 0.0, 0.0
    for start, end in sorted((n.start - preroll, max(n.end, n.start + 0.5) - preroll) for n in part.notes):
        start, end = max(start, reach), min(end, CLIP_SECONDS)
        if end > start:
            total += end - start
            reach = end
    return total


def piece_tags(piece: Piece) -> tuple[str, ...]:
    """The tags a listener would give: audible families, then the tempo tag if any, in TAGS order."""
    present = {p.family for p in piece.parts if sounding_seconds(p, piece.preroll) >= AUDIBLE_SECONDS}
    if piece.bpm >= FAST_BPM:
        present.add("fast")
    elif piece.bpm < SLOW_BPM:
        present.add("slow")
    return tuple(t for t in TAGS if t in present)


def unavailable(soundfont: Path) -> str | None:
    """Why FluidSynth cannot render with `soundfont` here, or None when it can."""
    try:
        import fluidsynth  # noqa: F401  - pyfluidsynth; raises ImportError without libfluidsynth
    except ImportError as exc:
        return f"FluidSynth is not usable ({exc})"
    if not soundfont.is_file():
        return f"the soundfont {soundfont} is missing"
    return None


class Renderer:
    """Renders pieces with one soundfont, each on a fresh synth.

    FluidSynth keeps state through a system reset (reverb and chorus modulation, voices in
    release), so a reused synth would make a clip's bytes depend on the clips its worker
    rendered before. With dynamic sample loading and the process's sample cache, a fresh
    synth per clip costs a few milliseconds, and any worker count gives the same set.
    """

    def __init__(self, soundfont: Path) -> None:
        import fluidsynth

        self._fluidsynth = fluidsynth
        self.soundfont = soundfont
        self._write = fluidsynth.cfunc(
            "fluid_synth_write_float",
            ctypes.c_int,
            ("synth", ctypes.c_void_p, 1),
            ("len", ctypes.c_int, 1),
            ("lout", ctypes.c_void_p, 1),
            ("loff", ctypes.c_int, 1),
            ("lincr", ctypes.c_int, 1),
            ("rout", ctypes.c_void_p, 1),
            ("roff", ctypes.c_int, 1),
            ("rincr", ctypes.c_int, 1),
        )
        synth, sfid = self._new_synth()
        try:
            self.presets = {
                (bank, p) for bank in (0, 128) for p in range(128) if synth.sfpreset_name(sfid, bank, p) is not None
            }
        finally:
            synth.delete()

    def _new_synth(self) -> tuple[Any, int]:
        synth = self._fluidsynth.Synth(gain=0.4, samplerate=float(RENDER_RATE), **{"synth.dynamic-sample-loading": 1})
        sfid = synth.sfload(str(self.soundfont))
        if sfid < 0:
            synth.delete()
            raise RuntimeError(f"FluidSynth could not load the soundfont {self.soundfont}")
        return synth, sfid

    def has_program(self, program: int, drums: bool = False) -> bool:
        return (128 if drums else 0, program) in self.presets

    def render(self, piece: Piece) -> np.ndarray:
        """The piece's stereo mix at RENDER_RATE, shape (samples, 2), from the start of the preroll."""
        synth, sfid = self._new_synth()
        try:
            return self._render(synth, sfid, piece)
        finally:
            synth.delete()

    def _render(self, synth: Any, sfid: int, piece: Piece) -> np.ndarray:
        synth.set_reverb(piece.room[0], piece.room[1], 0.8, piece.room[2])
        synth.set_chorus(3, 1.5, 0.4, 6.0, 0)
        events: list[tuple[int, int, int, int, int]] = []  # (block, order, channel, key, velocity)
        block = 64  # FluidSynth's internal buffer: event times land on its boundaries
        for ch, part in enumerate(piece.parts):
            channel = 9 if part.family == "drums" else ch  # at most 5 parts: never 9
            synth.program_select(channel, sfid, 128 if part.family == "drums" else 0, part.program)
            for ctrl, val in ((7, part.volume), (91, part.reverb), (93, part.chorus)):
                synth.cc(channel, ctrl, val)
            for n in part.notes:
                on = max(0, round(n.start * RENDER_RATE / block))
                off = max(on + 1, round(n.end * RENDER_RATE / block))
                events.append((on, 1, channel, n.key, n.velocity))
                events.append((off, 0, channel, n.key, 0))
        total = int(np.ceil((piece.preroll + CLIP_SECONDS) * RENDER_RATE / block)) + 8
        out = np.zeros((total * block, 2), dtype=np.float32)
        ptr = out.ctypes.data

        def write(first: int, last: int) -> None:  # blocks [first, last) as interleaved float stereo
            self._write(synth.synth, (last - first) * block, ptr, 2 * first * block, 2, ptr, 2 * first * block + 1, 2)

        pos = 0
        for when, is_on, channel, key, vel in sorted(events):
            if when >= total:
                break
            if when > pos:
                write(pos, when)
                pos = when
            if is_on:
                synth.noteon(channel, key, vel)
            else:
                synth.noteoff(channel, key)
        write(pos, total)
        return out


def master(stereo: np.ndarray, piece: Piece, rng: np.random.Generator) -> np.ndarray:
    """Mono clip at SAMPLE_RATE: resample, EQ and background noise in one FFT, then the level.

    Halving the rate in the frequency domain is an ideal anti-alias filter; the EQ is a
    smooth zero-phase gain curve on the same spectrum, so both cost one FFT pair.
    """
    mono = stereo.mean(axis=1, dtype=np.float64)
    start = round(piece.preroll * RENDER_RATE)
    n_out = int(CLIP_SECONDS * SAMPLE_RATE)
    ratio = RENDER_RATE // SAMPLE_RATE
    pad = 256 * ratio  # keeps the FFT's wrap-around out of the clip
    seg = mono[max(0, start - pad) : start + n_out * ratio + pad]
    seg = np.pad(seg, (0, max(0, n_out * ratio + 2 * pad - len(seg))))
    spec = np.fft.rfft(seg)
    n_half = len(seg) // ratio
    spec = spec[: n_half // 2 + 1]
    freqs = np.fft.rfftfreq(n_half, 1.0 / SAMPLE_RATE)
    tilt, low_cut, high_cut = piece.eq
    octaves = np.log2(np.maximum(freqs, 20.0) / 1000.0)
    gain_db = tilt * octaves
    gain = 10 ** (gain_db / 20) / np.sqrt(1 + (low_cut / np.maximum(freqs, 1.0)) ** 4)
    gain /= np.sqrt(1 + (freqs / high_cut) ** 8)
    clip = np.fft.irfft(spec * gain, n=n_half) / ratio
    clip = clip[pad // ratio : pad // ratio + n_out]
    rms = float(np.sqrt(np.mean(clip**2))) + 1e-9
    noise = rng.standard_normal(n_out)
    if piece.pink_noise:
        shaped = np.fft.rfft(noise) / np.sqrt(np.maximum(np.fft.rfftfreq(n_out, 1.0 / SAMPLE_RATE), 20.0))
        noise = np.fft.irfft(shaped, n=n_out)
    noise *= rms * 10 ** (-piece.snr_db / 20) / (np.sqrt(np.mean(noise**2)) + 1e-12)
    clip = clip + noise
    clip *= 10 ** (piece.peak_db / 20) / (np.abs(clip).max() + 1e-9)
    return clip.astype(np.float32)


@dataclass
class ClipResult:
    """A rendered clip, its tags and what was played (tests check the tags against it)."""

    audio: np.ndarray
    tags: tuple[str, ...]
    piece: Piece


def render_clip(renderer: Renderer, style: ArtistStyle, seed_seq: np.random.SeedSequence) -> ClipResult:
    """Compose, render and master one clip; programs the soundfont lacks are redrawn."""
    rng = np.random.default_rng(seed_seq)
    return _finish(renderer, compose(rng, style), rng)


def _finish(renderer: Renderer, piece: Piece, rng: np.random.Generator) -> ClipResult:
    """Render and master a piece, first redrawing the programs the soundfont lacks."""
    for part in piece.parts:
        drums = part.family == "drums"
        choices = DRUM_KITS if drums else FAMILIES[part.family][part.role]
        if not renderer.has_program(part.program, drums):
            part.program = next(p for p in choices if renderer.has_program(p, drums))
    audio = master(renderer.render(piece), piece, rng)
    return ClipResult(audio, piece_tags(piece), piece)


def solo_clip(renderer: Renderer, family: str, seed: int) -> ClipResult:
    """One instrument family playing alone, as `compose` makes its solos: a stand-in for a user's recording of it.

    Raises:
        ValueError: `family` is not one of the melodic families.
    """
    if family not in MELODIC:
        raise ValueError(f"no solo for {family!r}; melodic families: {', '.join(MELODIC)}")
    rng = np.random.default_rng(seed)
    style = make_artist(rng)
    c = _Composer(rng, style)
    return _finish(renderer, _produce(c, style, _solo(c, family)), rng)
