import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from autotag.config import ConfigError
from autotag.serving.tagger import Tagger, TaggingNet
from autotag.store.run_folder import RunError
from tests.conftest import tone

pytestmark = pytest.mark.slow


def test_taggram_covers_long_and_short_clips(trained_run: Path, tmp_path: Path) -> None:
    tagger = Tagger.load(trained_run, device="cpu")
    assert tagger.checkpoint.name.startswith("best-")
    sf.write(tmp_path / "long.flac", tone(25.0, sr=44100, channels=2), 44100)
    pred = tagger.predict(tmp_path / "long.flac")
    assert pred.taggram.shape == (9, len(tagger.labels))  # ceil(25 / 3) chunks
    assert pred.chunk_starts.tolist() == [3.0 * i for i in range(9)]
    assert pred.duration == pytest.approx(25.0)
    assert set(pred.clip) == set(tagger.labels) and len(pred.top(3)) == 3

    short = tagger.predict(np.zeros(8000, dtype=np.float32))
    assert short.taggram.shape == (1, len(tagger.labels))


def test_clip_score_is_the_mean_of_whole_chunks(trained_run: Path) -> None:
    tagger = Tagger.load(trained_run, device="cpu")
    wave = np.random.default_rng(0).standard_normal(tagger.chunk_samples * 2).astype(np.float32) * 0.1
    pred = tagger.predict(wave)
    np.testing.assert_allclose([pred.clip[t] for t in pred.labels], pred.taggram.mean(0), rtol=1e-5)


def test_checkpoint_that_would_run_code_is_refused(trained_run: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self) -> tuple:
            return (os.system, (f"touch {marker}",))

    bad = tmp_path / "evil.ckpt"
    torch.save({"hyper_parameters": Evil(), "state_dict": {}}, bad)
    with pytest.raises(RunError, match="cannot be loaded"):
        Tagger.from_checkpoint(bad)
    assert not marker.exists()


def test_a_truncated_best_checkpoint_falls_back_with_a_note(trained_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    best = Tagger.load(run).checkpoint
    best.write_bytes(best.read_bytes()[:1000])
    tagger = Tagger.load(run)
    assert tagger.checkpoint.name == "last.ckpt"
    assert tagger.note.startswith("using last.ckpt; checkpoint") and best.name in tagger.note
    (run / "checkpoints" / "last.ckpt").write_bytes(b"")
    with pytest.raises(RunError, match=f"checkpoint {best} cannot be loaded"):
        Tagger.load(run)


def test_files_are_streamed_with_the_same_scores(trained_run: Path, tmp_path: Path) -> None:
    tagger = Tagger.load(trained_run, device="cpu")
    rng = np.random.default_rng(1)
    wave = (rng.standard_normal(16000 * 20) * 0.1).astype(np.float32)
    sf.write(tmp_path / "same_rate.wav", wave, 16000, subtype="FLOAT")
    streamed, in_memory = tagger.predict(tmp_path / "same_rate.wav"), tagger.predict(wave)
    np.testing.assert_allclose(streamed.taggram, in_memory.taggram, atol=1e-6)
    assert streamed.clip == pytest.approx(in_memory.clip, abs=1e-6) and streamed.duration == 20.0

    sf.write(tmp_path / "other_rate.wav", tone(20.0, sr=44100), 44100)  # resampled chunk by chunk
    a = tagger.predict(tmp_path / "other_rate.wav")
    b = tagger.predict((tmp_path / "other_rate.wav").read_bytes())  # whole file resampled at once
    assert a.taggram.shape == b.taggram.shape and a.duration == pytest.approx(b.duration, abs=1e-3)
    np.testing.assert_allclose(a.taggram[:-1], b.taggram[:-1], atol=0.02)
    # The short last chunk is looped to fill the window: the edge of its own resampling repeats
    # with it (a few samples at the seam), so it may differ a little more.
    np.testing.assert_allclose(a.taggram[-1], b.taggram[-1], atol=0.06)


def test_tagger_scores_like_the_trained_lightning_module(trained_run: Path, demo_dataset: Path) -> None:
    """Tagging builds its own network (no Lightning) and folds batch norms: same probabilities."""
    from autotag.audio.decode import load_audio
    from autotag.training.module import TaggingModule

    tagger = Tagger.load(trained_run, device="cpu")
    ckpt = torch.load(tagger.checkpoint, map_location="cpu", weights_only=True)
    module = TaggingModule(**ckpt["hyper_parameters"])
    module.load_state_dict(ckpt["state_dict"])
    module.eval()
    wave = load_audio(demo_dataset / "audio" / "clip_0002.wav", tagger.sample_rate)
    pred = tagger.predict(wave)
    n = tagger.chunk_samples
    chunks = np.stack([np.resize(wave[i : i + n], n) for i in range(0, len(wave), n)])  # the last looped
    with torch.no_grad():
        expected = torch.sigmoid(module(module.frontend(torch.from_numpy(chunks)))).numpy()
    # Folded batch norms sum in another order: float32 noise of about 1e-6 in a probability.
    np.testing.assert_allclose(pred.taggram, expected, atol=5e-6)


#: A checkpoint's own numbers for each setting: in range, at the schema's edges, and far outside.
_VALUES = {
    "sample_rate": st.sampled_from([8000, 16000, 48000, 1, 10**7]),
    "n_fft": st.sampled_from([64, 512, 8192, 2**20]),
    "hop_length": st.sampled_from([16, 256, 4096, 2**20]),
    "n_mels": st.sampled_from([None, 8, 48, 256, 10**6]),
    "f_min": st.sampled_from([0.0, 2000.0, 1e9]),
    "f_max": st.sampled_from([None, 1000.0, 4000.0, 24000.0, 1e9]),
    "chunk_seconds": st.sampled_from([0.5, 3.0, 60.0, 1e6]),
    "labels": st.sampled_from([["a", "b"], [f"t{i}" for i in range(10_000)], [f"t{i}" for i in range(10_001)]]),
}


@settings(max_examples=40, deadline=None)
@given(st.fixed_dictionaries(_VALUES))
def test_a_network_is_built_only_from_settings_a_config_could_hold(values: dict) -> None:
    """Whatever a checkpoint says, TaggingNet refuses it (ConfigError) or builds a network of config size."""
    try:
        net = TaggingNet({"model_name": "tiny", **values})
    except ConfigError:
        return
    assert sum(p.numel() for p in net.parameters()) < 10**7
    assert net.hparams.chunk_seconds <= 60.0 and len(net.hparams.labels) <= 10_000


def test_the_loaded_checkpoints_time_is_kept_when_the_file_is_gone(trained_run: Path, tmp_path: Path) -> None:
    """A robustness report keys its progress on it; ModelCheckpoint may have deleted the file since."""
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    tagger = Tagger.load(run)
    stamp = tagger.checkpoint.stat().st_mtime_ns
    tagger.checkpoint.unlink()
    assert tagger.checkpoint_mtime_ns == stamp


def test_silent_chunks_tag_nothing_and_do_not_vote(
    trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from autotag.cli.main import main

    tagger = Tagger.load(trained_run, device="cpu")
    n = tagger.chunk_samples
    sound = tone(2 * n / tagger.sample_rate, sr=tagger.sample_rate)[: 2 * n, 0]
    half_silent = np.concatenate([sound, np.zeros(2 * n, np.float32)])
    pred, alone = tagger.predict(half_silent), tagger.predict(sound)
    assert not pred.silent and (pred.taggram[2:] == 0).all() and (pred.taggram[:2] > 0).any()
    np.testing.assert_allclose([pred.clip[t] for t in pred.labels], [alone.clip[t] for t in alone.labels], rtol=1e-5)

    quiet_noise = np.random.default_rng(0).uniform(-1, 1, 2 * n).astype(np.float32) / 32768  # a 16-bit noise floor
    silent = tagger.predict(quiet_noise)
    assert silent.silent and set(silent.clip.values()) == {0.0}
    sf.write(tmp_path / "silence.wav", np.zeros(2 * n, np.float32), tagger.sample_rate)
    assert main(["tag", "--run", str(trained_run), str(tmp_path / "silence.wav"), "--format", "tags"]) == 0
    out, err = capsys.readouterr()
    assert '"' + str(tmp_path / "silence.wav") + '": []' in out and "silence.wav is silent throughout: no tags" in err
