"""Training and evaluation batches out of the feature cache, as a LightningDataModule.

Training draws one random chunk per clip per epoch (a fresh offset each time, as in
Won et al. 2020); validation and test score up to `eval_chunks` evenly spaced chunks of
every clip, so clip-level scores are averages over the whole clip.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from autotag.audio.logmel import silence_floor_db
from autotag.config import TrainConfig
from autotag.data.cache import FeatureCache
from autotag.data.checks import DataSetError
from autotag.data.formats import Clip, TaggedDataset, multi_hot

log = logging.getLogger("autotag.data")


class RandomChunks(Dataset):
    """Item i: a random chunk of clip i mod clips and its targets -> ((n_mels, frames), (tags,)).

    With `per_clip` > 1 an epoch sees several independent chunks of every clip: a 3 s
    chunk of a 30 s clip shows a tenth of it, and one chunk per clip per epoch makes
    epochs short and validation (the costly part of a small-data epoch) frequent.
    """

    def __init__(
        self, cache: FeatureCache, clips: Sequence[Clip], labels: Sequence[str], frames: int, per_clip: int = 1
    ) -> None:
        self.cache, self.ids, self.frames, self.per_clip = cache, [c.id for c in clips], frames, per_clip
        self.targets = torch.from_numpy(multi_hot(clips, labels))

    def __len__(self) -> int:
        return len(self.ids) * self.per_clip

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        i = k % len(self.ids)
        clip_id = self.ids[i]
        slack = self.cache.frames(clip_id) - self.frames
        # torch's generator is seeded per worker by Lightning's seed_everything(workers=True).
        start = int(torch.randint(0, slack + 1, ()).item()) if slack > 0 else 0
        return torch.from_numpy(self.cache.chunk(clip_id, start, self.frames)), self.targets[i]


def eval_offsets(n_frames: int, frames: int, max_chunks: int) -> list[int]:
    """Start frames of up to `max_chunks` evenly spaced chunks covering a clip."""
    count = max(1, min(max_chunks, n_frames // frames))
    if count == 1:
        return [max(0, (n_frames - frames) // 2)]
    return [int(round(x)) for x in np.linspace(0, n_frames - frames, count)]


class EvalChunks(Dataset):
    """Item k: (chunk (n_mels, frames), targets (tags,), clip number, k) for clip-level scoring.

    Only chunks that hold a signal are items (`audio.logmel.has_signal`): a silent chunk
    does not vote, and a clip that is silent throughout is not scored (`silent` names it).
    The chunk number k lets scores gathered from several DDP ranks count each chunk once.
    """

    def __init__(
        self,
        cache: FeatureCache,
        clips: Sequence[Clip],
        labels: Sequence[str],
        frames: int,
        max_chunks: int,
        n_fft: int,
    ) -> None:
        self.cache, self.frames = cache, frames
        self.clip_targets = torch.from_numpy(multi_hot(clips, labels))
        floor = silence_floor_db(n_fft)
        self.items = [
            (i, clip.id, start)
            for i, clip in enumerate(clips)
            for start in eval_offsets(cache.frames(clip.id), frames, max_chunks)
            if cache.chunk(clip.id, start, frames).max() >= floor
        ]
        heard = {i for i, _, _ in self.items}
        self.silent = [clip.id for i, clip in enumerate(clips) if i not in heard]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor, int, int]:
        i, clip_id, start = self.items[k]
        return torch.from_numpy(self.cache.chunk(clip_id, start, self.frames)), self.clip_targets[i], i, k


class TaggingDataModule(L.LightningDataModule):
    """Batches for one validated data set whose clips are all in `cache`."""

    def __init__(self, config: TrainConfig, dataset: TaggedDataset, cache: FeatureCache) -> None:
        super().__init__()
        self.config, self.dataset, self.cache = config, dataset, cache
        self.labels = dataset.labels

    def _clips(self, split: str) -> list[Clip]:
        return [c for c in self.dataset.split(split) if c.id in self.cache.clips]

    def _loader(self, ds: Dataset, shuffle: bool, drop_last: bool = False) -> DataLoader:
        workers = self.config.num_workers
        return DataLoader(
            ds,
            batch_size=self.config.batch_size,
            shuffle=shuffle,
            drop_last=drop_last,
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def train_dataloader(self) -> DataLoader:
        clips = self._clips("train")
        ds = RandomChunks(self.cache, clips, self.labels, self.config.chunk_frames, self.config.chunks_per_clip)
        # A last batch of one breaks BatchNorm1d in training mode; drop it when we can.
        return self._loader(ds, shuffle=True, drop_last=len(ds) > self.config.batch_size)

    def eval_dataset(self, split: str) -> EvalChunks:
        """Raises: DataSetError: the split has clips, and every one of them is silent throughout."""
        clips = self._clips(split)
        config = self.config
        chunks = EvalChunks(self.cache, clips, self.labels, config.chunk_frames, config.eval_chunks, config.n_fft)
        if chunks.silent:
            if len(chunks.silent) == len(clips):
                raise DataSetError(f"every clip of the {split} split is silent throughout: nothing to score")
            log.warning(
                "%d clip(s) of the %s split are silent throughout and not scored: %s",
                len(chunks.silent),
                split,
                ", ".join(chunks.silent[:5]) + (" ..." if len(chunks.silent) > 5 else ""),
            )
        return chunks

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.eval_dataset("valid"), shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.eval_dataset("test"), shuffle=False)
