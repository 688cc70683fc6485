"""From a config to trainable data: read, validate, featurize, validate again.

`open_dataset` is cheap (no decoding) so the CLI and dashboard can refuse a bad data set
before any run folder exists; `prepare_features` adds the decode pass that fills the
feature cache and drops clips whose audio turned out to be undecodable.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from autotag.config import PUBLISHED_DATA, TrainConfig
from autotag.data.checks import ValidationReport, check_dataset, require_trainable
from autotag.data.formats import DataFormatError, TaggedDataset, load_dataset

if TYPE_CHECKING:  # the cache needs torch; the cheap check in open_dataset must not import it
    from autotag.data.cache import FeatureCache, Progress


def _checked(raw: TaggedDataset, undecodable: frozenset[str] = frozenset()) -> tuple[ValidationReport, TaggedDataset]:
    report, usable = check_dataset(raw, undecodable)
    require_trainable(report, usable)
    return report, usable


def _read(config: TrainConfig) -> TaggedDataset:
    if config.data.startswith(PUBLISHED_DATA):
        raise DataFormatError(
            f"{config.data} was trained by its authors on their data, which is not here: give --data FOLDER "
            "(to train on your data from its weights: --init-from that run)"
        )
    return load_dataset(
        config.data, config.format, config.top_n, config.jamendo_subset, config.split_index, config.audio_root
    )


def open_dataset(config: TrainConfig) -> tuple[ValidationReport, TaggedDataset]:
    """Read and check the data set of `config`.

    Raises:
        DataFormatError: unknown layout or malformed metadata.
        DataSetError: nothing trainable (no clips, fewer than 2 tags, an empty split).
    """
    return _checked(_read(config))


def feature_device(config: TrainConfig) -> str:
    """The device of the run's model, where its log-mel front end runs too."""
    import torch

    if config.accelerator == "cpu" or not torch.cuda.is_available():
        return "cpu"
    local_rank = int(os.environ.get("LOCAL_RANK", "0") or 0)  # each DDP process of a node has its GPU
    return f"cuda:{local_rank % torch.cuda.device_count()}"


def printed_progress(stream: TextIO) -> Progress:
    """A (done, total) callback that prints "features done/total" to `stream` every 10 %."""
    last = -1

    def progress(done: int, total: int) -> None:
        nonlocal last
        tenth = done * 10 // max(total, 1)
        if tenth != last or done == total:
            last = tenth
            print(f"features {done}/{total}", file=stream, flush=True)

    return progress


def prepare_features(
    config: TrainConfig, cache_root: Path | None = None, progress: Progress | None = None
) -> tuple[ValidationReport, TaggedDataset, FeatureCache]:
    """`open_dataset`, then the feature cache; clips that fail to decode are skipped."""
    from autotag.data.cache import build_cache

    raw = _read(config)
    report, usable = _checked(raw)
    cache = build_cache(
        usable.clips, config.feature_settings(), root=cache_root, progress=progress, device=feature_device(config)
    )
    if cache.failed:
        report, usable = _checked(raw, frozenset(cache.failed))
    return report, usable, cache
