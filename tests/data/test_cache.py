from pathlib import Path

import numpy as np
import pytest
import torch

from autotag.audio.decode import load_audio
from autotag.audio.logmel import LogMel
from autotag.data.cache import build_cache
from autotag.data.formats import load_dataset

SETTINGS = {"sample_rate": 16000, "n_fft": 512, "hop_length": 256, "n_mels": 32, "f_min": 0.0, "f_max": 8000.0}


def test_features_match_the_front_end_and_are_reused(tmp_path: Path, small_csv_dataset: Path) -> None:
    clips = load_dataset(small_csv_dataset).clips
    calls: list[tuple[int, int]] = []
    cache = build_cache(clips, SETTINGS, root=tmp_path / "c", workers=0, progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (12, 12) and not cache.failed
    expected = LogMel(**SETTINGS)(torch.from_numpy(load_audio(clips[0].path, 16000))[None])[0].numpy()
    got = cache.chunk(clips[0].id, 0, expected.shape[1])
    np.testing.assert_allclose(got, expected, atol=0.1)  # float16 storage

    stamp = (cache.folder / "mels.f16").stat().st_mtime_ns
    again = build_cache(clips, SETTINGS, root=tmp_path / "c", workers=0)
    assert again.folder == cache.folder and (again.folder / "mels.f16").stat().st_mtime_ns == stamp
    other = build_cache(clips, {**SETTINGS, "n_mels": 16}, root=tmp_path / "c", workers=0)
    assert other.folder != cache.folder and other.n_mels == 16
    assert not list((tmp_path / "c").glob(".*tmp*"))  # no temporary folders left behind


def test_chunks_past_the_end_loop_the_clip(tmp_path: Path, small_csv_dataset: Path) -> None:
    clips = load_dataset(small_csv_dataset).clips[:2]
    cache = build_cache(clips, SETTINGS, root=tmp_path / "c", workers=0)
    n = cache.frames(clips[0].id)
    whole = cache.chunk(clips[0].id, 0, n)
    chunk = cache.chunk(clips[0].id, n - 3, 10)
    assert chunk.shape == (32, 10)
    assert (chunk[:, :3] == whole[:, -3:]).all() and (chunk[:, 3:] == whole[:, :7]).all()
    longer = cache.chunk(clips[0].id, 0, 3 * n)  # a window three times the clip: the clip thrice
    assert (longer == np.concatenate([whole] * 3, axis=1)).all()


def test_undecodable_files_are_recorded_not_fatal(tmp_path: Path, small_csv_dataset: Path) -> None:
    (small_csv_dataset / "audio" / "02.wav").write_bytes(b"RIFF not really a wav")
    clips = load_dataset(small_csv_dataset).clips
    cache = build_cache(clips, SETTINGS, root=tmp_path / "c", workers=2)
    assert list(cache.failed) == ["audio/02.wav"]
    assert "not a readable audio file" in cache.failed["audio/02.wav"]
    assert len(cache.clips) == 11


def test_cache_survives_pickling_into_workers(tmp_path: Path, small_csv_dataset: Path) -> None:
    import pickle

    clips = load_dataset(small_csv_dataset).clips
    cache = build_cache(clips, SETTINGS, root=tmp_path / "c", workers=0)
    cache.chunk(clips[0].id, 0, 4)  # maps the file in this process
    clone = pickle.loads(pickle.dumps(cache))
    assert "_mm" not in clone.__dict__
    np.testing.assert_array_equal(clone.chunk(clips[0].id, 0, 4), cache.chunk(clips[0].id, 0, 4))


@pytest.mark.parametrize("n", [1, 3])
def test_tiny_inputs(tmp_path: Path, small_csv_dataset: Path, n: int) -> None:
    clips = load_dataset(small_csv_dataset).clips[:n]
    assert len(build_cache(clips, SETTINGS, root=tmp_path / "c").clips) == n


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU: the front end runs there only on one")
def test_a_cache_built_on_the_gpu_matches_the_cpu_one(tmp_path: Path, small_csv_dataset: Path) -> None:
    clips = load_dataset(small_csv_dataset).clips
    on_cpu = build_cache(clips, SETTINGS, root=tmp_path / "cpu", workers=0)
    on_gpu = build_cache(clips, SETTINGS, root=tmp_path / "gpu", workers=2, device="cuda")
    assert on_gpu.clips == on_cpu.clips
    np.testing.assert_allclose(np.asarray(on_gpu.mels, np.float32), np.asarray(on_cpu.mels, np.float32), atol=0.1)
