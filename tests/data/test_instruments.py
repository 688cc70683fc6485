"""The FluidSynth demo set: composition, tags, rendering (skipped where FluidSynth or a soundfont is missing)."""

from __future__ import annotations

import numpy as np
import pytest

from autotag.data import instruments as ins

needs_fluidsynth = pytest.mark.skipif(
    ins.unavailable(ins.DEFAULT_SOUNDFONT) is not None,
    reason=f"{ins.unavailable(ins.DEFAULT_SOUNDFONT)} (bash scripts/setup.sh)",
)


def _pieces(n: int, seed: int = 5, artists: int = 8) -> list[ins.Piece]:
    styles = [ins.make_artist(np.random.default_rng(s)) for s in np.random.SeedSequence(seed).spawn(artists)]
    return [
        ins.compose(np.random.default_rng(s), styles[i % artists])
        for i, s in enumerate(np.random.SeedSequence(seed + 1).spawn(n))
    ]


def test_tags_are_the_families_that_sound_and_the_tempo() -> None:
    """Tagged families are the parts that sound >= 2 s, each playing a program of its family and role."""
    bands = set()
    for piece in _pieces(300):
        tags = set(ins.piece_tags(piece))
        for part in piece.parts:
            programs = ins.DRUM_KITS if part.family == "drums" else ins.FAMILIES[part.family][part.role]
            assert part.program in programs
        audible = {p.family for p in piece.parts if ins.sounding_seconds(p, piece.preroll) >= ins.AUDIBLE_SECONDS}
        assert tags - {"fast", "slow"} == audible
        assert ("fast" in tags) == (piece.bpm >= 120) and ("slow" in tags) == (piece.bpm < 90)
        bands.add("fast" if "fast" in tags else "slow" if "slow" in tags else "mid")
    assert bands == {"fast", "slow", "mid"}


def test_every_tag_is_common_but_not_everywhere() -> None:
    pieces = _pieces(300, artists=150)  # as many artists as the demo set's 300 clips have
    counts = {t: sum(t in ins.piece_tags(p) for p in pieces) / len(pieces) for t in ins.TAGS}
    assert all(0.1 <= share <= 0.6 for share in counts.values()), counts


def test_sounding_seconds_is_the_union_inside_the_clip() -> None:
    notes = [
        ins.Note(1.0, 3.0, 60, 90),
        ins.Note(2.0, 4.0, 64, 90),
        ins.Note(9.0, 9.1, 67, 90),
        ins.Note(12.0, 13.0, 60, 90),
    ]
    part = ins.Part("piano", "chords", 0, notes, 100, 40, 0)
    assert ins.sounding_seconds(part, preroll=0.0) == pytest.approx(3.0 + 0.5)  # 1-4 s, 9-9.5 s; 12 s is past the clip
    assert ins.sounding_seconds(part, preroll=2.0) == pytest.approx(2.0 + 0.5)  # the clip starts at 2 s


def test_late_entry_drops_the_start() -> None:
    rng = np.random.default_rng(0)
    notes = [ins.Note(t, t + 0.4, 60, 90) for t in np.arange(0, 12, 0.5)]
    late = ins._late(notes, rng, preroll=1.0, bar=2.0)
    first = late[0].start - 1.0
    assert 0.0 < first <= 6.0 and late[-1] == notes[-1]


@needs_fluidsynth
def test_render_is_independent_of_what_the_synth_played_before() -> None:
    renderer = ins.Renderer(ins.DEFAULT_SOUNDFONT)
    style = ins.make_artist(np.random.default_rng(1))
    a, b = np.random.SeedSequence(2).spawn(2)
    alone = ins.render_clip(renderer, style, b).audio
    ins.render_clip(renderer, style, a)
    after = ins.render_clip(renderer, style, b).audio
    assert np.array_equal(alone, after)
    assert alone.shape == (160000,) and alone.dtype == np.float32 and 0.05 < np.abs(alone).max() < 1.0


@needs_fluidsynth
def test_drums_and_bass_are_audible() -> None:
    """Drums add broadband onsets, bass adds energy below 120 Hz, measured on rendered clips."""
    renderer = ins.Renderer(ins.DEFAULT_SOUNDFONT)
    artists = [ins.make_artist(np.random.default_rng(s)) for s in np.random.SeedSequence(3).spawn(6)]
    onsets: dict[bool, list[float]] = {True: [], False: []}
    low: dict[bool, list[float]] = {True: [], False: []}
    for i, seq in enumerate(np.random.SeedSequence(4).spawn(30)):
        clip = ins.render_clip(renderer, artists[i % 6], seq)
        frames = clip.audio.reshape(-1, 256) * np.hanning(256)
        high = 10 * np.log10((np.abs(np.fft.rfft(frames, axis=1))[:, 48:] ** 2).sum(1) + 1e-10)
        onsets["drums" in clip.tags].append(float(np.mean(np.diff(high) > 6)))
        spectrum = np.abs(np.fft.rfft(clip.audio))
        low["bass" in clip.tags].append(float(spectrum[: 120 * 10].sum() / spectrum.sum()))
    assert np.mean(onsets[True]) > 1.3 * np.mean(onsets[False])
    assert np.mean(low[True]) > 1.3 * np.mean(low[False])


@pytest.mark.skipif(ins.unavailable(ins.OTHER_SOUNDFONT) is not None, reason="TimGM6mb is not installed")
@needs_fluidsynth
def test_another_soundfont_sounds_different() -> None:
    style = ins.make_artist(np.random.default_rng(1))
    seq = np.random.SeedSequence(9)
    fluid = ins.render_clip(ins.Renderer(ins.DEFAULT_SOUNDFONT), style, seq)
    tim = ins.render_clip(ins.Renderer(ins.OTHER_SOUNDFONT), style, seq)
    assert fluid.tags == tim.tags and not np.allclose(fluid.audio, tim.audio, atol=1e-3)


def test_solos_are_one_family_and_common() -> None:
    """About SOLO_P of the clips are one instrument alone; a comping family plays chords and melody."""
    pieces = _pieces(300)
    solos = [p for p in pieces if len({part.family for part in p.parts}) == 1 and p.parts[0].family != "drums"]
    assert 0.5 * ins.SOLO_P <= len(solos) / len(pieces) <= 2 * ins.SOLO_P
    assert any({part.role for part in p.parts} == {"chords", "melody"} for p in solos)


@needs_fluidsynth
def test_a_solo_clip_is_that_family_alone() -> None:
    renderer = ins.Renderer(ins.DEFAULT_SOUNDFONT)
    clip = ins.solo_clip(renderer, "piano", seed=3)
    assert {p.family for p in clip.piece.parts} == {"piano"} and "piano" in clip.tags
    assert clip.audio.shape == (160000,) and np.array_equal(clip.audio, ins.solo_clip(renderer, "piano", 3).audio)
    with pytest.raises(ValueError, match="melodic families"):
        ins.solo_clip(renderer, "drums", seed=3)
