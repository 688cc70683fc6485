from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from autotag.data.cache import build_cache
from autotag.data.datamodule import EvalChunks, RandomChunks, TaggingDataModule, eval_offsets
from autotag.data.formats import load_dataset
from autotag.data.prepare import open_dataset
from tests.conftest import tiny_config, tone, write_csv_dataset


def test_eval_offsets_cover_the_clip() -> None:
    assert eval_offsets(100, 30, 16) == [0, 35, 70]  # as many whole chunks as fit
    assert eval_offsets(100, 30, 2) == [0, 70]
    assert eval_offsets(20, 30, 16) == [0]  # shorter than a chunk: padded later
    assert eval_offsets(40, 30, 16) == [5]  # one chunk fits: take the middle


def test_batches_have_the_configured_shapes(small_csv_dataset: Path) -> None:
    config = tiny_config(small_csv_dataset, batch_size=3)
    _, ds = open_dataset(config)
    cache = build_cache(ds.clips, config.feature_settings())
    dm = TaggingDataModule(config, ds, cache)
    mels, targets = next(iter(dm.train_dataloader()))
    assert mels.shape == (3, 64, config.chunk_frames) and targets.shape == (3, 3)
    assert len(dm.train_dataloader()) == 2  # 8 clips, batch 3, last partial batch dropped
    mels, targets, idx, chunk = next(iter(dm.val_dataloader()))
    assert mels.shape[1:] == (64, config.chunk_frames) and idx.tolist() == sorted(idx.tolist())
    assert chunk.tolist() == list(range(len(chunk)))


def test_random_chunks_vary_and_eval_chunks_do_not(small_csv_dataset: Path) -> None:
    config = tiny_config(small_csv_dataset, chunk_seconds=0.5)
    _, ds = open_dataset(config)
    cache = build_cache(ds.clips, config.feature_settings())
    train = RandomChunks(cache, ds.split("train"), ds.labels, 8)
    torch.manual_seed(0)
    draws = {tuple(train[0][0][0, :3].tolist()) for _ in range(10)}
    assert len(draws) > 1
    ev = EvalChunks(cache, ds.split("valid"), ds.labels, 8, max_chunks=4, n_fft=512)
    assert len(ev) == 8 and torch.equal(ev[0][0], ev[0][0])


def test_chunks_per_clip_draws_that_many_chunks_of_every_clip_per_epoch(small_csv_dataset: Path) -> None:
    config = tiny_config(small_csv_dataset, chunk_seconds=0.5, chunks_per_clip=3, batch_size=4)
    _, ds = open_dataset(config)
    cache = build_cache(ds.clips, config.feature_settings())
    loader = TaggingDataModule(config, ds, cache).train_dataloader()
    train = ds.split("train")
    assert len(loader.dataset) == 3 * len(train) and len(loader) == 3 * len(train) // 4
    targets = loader.dataset.targets
    for k in range(len(loader.dataset)):  # item k is a chunk of clip k mod clips, with that clip's targets
        assert torch.equal(loader.dataset[k][1], targets[k % len(train)])


def test_silent_chunks_are_not_scored_and_a_silent_clip_is_named(tmp_path: Path) -> None:
    ds, cache = _silent_cache(tmp_path)
    ev = EvalChunks(cache, ds.clips, ds.labels, 8, max_chunks=4, n_fft=512)
    loud, half, silent = (c.id for c in ds.clips)
    assert {clip for _, clip, _ in ev.items} == {loud, half} and ev.silent == [silent]
    assert [start for _, clip, start in ev.items if clip == half] == [0]  # its second half is silence


def _silent_cache(root: Path) -> tuple:
    """Three 1 s clips: a tone throughout, a tone for its first 0.2 s then silence, silence."""
    sr = 16000
    waves = [tone(1.0)[:, 0], np.concatenate([tone(0.2)[:, 0], np.zeros(int(0.8 * sr), "f4")]), np.zeros(sr, "f4")]
    for i, wave in enumerate(waves):
        (root / "audio").mkdir(parents=True, exist_ok=True)
        sf.write(root / "audio" / f"{i}.wav", wave, sr)
    write_csv_dataset(root, [(f"audio/{i}.wav", "a", "valid") for i in range(3)])
    ds = load_dataset(root, "auto")
    return ds, build_cache(ds.clips, tiny_config(root).feature_settings())
