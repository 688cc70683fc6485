"""How well a trained run tags another data set: its best checkpoint against that set's labels.

A run's own test split was drawn from the data it trained on. Recordings it never heard
(another soundfont, another collection) say more about what a user will get; the scores
count only the tags both share. Every clip is scored exactly as the run's test scored its
clips (`Scorer`), so `evaluate` on the run's own test split gives metrics.json's numbers,
and the robustness report's clean row is the same score. (`autotag tag` scores a file's
consecutive windows instead, for its taggram: a clip's mean there can differ a little.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from autotag.audio.decode import AudioError, load_audio
from autotag.audio.logmel import LogMel, has_signal
from autotag.config import TrainConfig, load_config
from autotag.data.cache import looped_chunk, mel_f16
from autotag.data.checks import DataSetError
from autotag.data.datamodule import eval_offsets
from autotag.data.formats import load_dataset, multi_hot
from autotag.serving.tagger import Tagger
from autotag.store.run_folder import RunFolder
from autotag.training.metrics import tag_scores


class Scorer:
    """A run's trained network and feature settings, scoring one wave as the run's test did.

    Log-mel features rounded to float16 as the feature cache stores them, up to
    `eval_chunks` evenly spaced chunks, the trained network (as trained, not the faster
    inference copy, whose rounding differs), the mean of the chunks' sigmoids: a run
    trained in float32 (the CPU default) gets its test scores back to float rounding.
    """

    def __init__(self, tagger: Tagger, config: TrainConfig) -> None:
        self.tagger = tagger
        self.net = tagger.module.net.eval()
        self.device = tagger.device
        self.logmel = LogMel(**config.feature_settings()).to(self.device)
        self.frames, self.max_chunks = config.chunk_frames, config.eval_chunks
        self.sample_rate, self.n_fft = config.sample_rate, config.n_fft

    @classmethod
    def load(cls, run_dir: str | Path) -> Scorer:
        """The run's best checkpoint and its config.yaml.

        Raises:
            RunError: the run has no usable checkpoint.
            ConfigError: its config.yaml cannot be read.
        """
        tagger = Tagger.load(run_dir)
        return cls(tagger, load_config(RunFolder(Path(run_dir)).config))

    @torch.inference_mode()
    def clip_probs(self, wave: np.ndarray) -> np.ndarray | None:
        """(tags,) the clip's probabilities: the mean of the sigmoids of its evaluation chunks
        that hold a signal; None when none does (silent throughout)."""
        mels = mel_f16(self.logmel, wave)
        starts = eval_offsets(len(mels), self.frames, self.max_chunks)
        x = torch.from_numpy(np.stack([looped_chunk(mels, s, self.frames) for s in starts])).to(self.device)
        x = x[has_signal(x, self.n_fft)]
        return torch.sigmoid(self.net(x).float()).mean(0).cpu().numpy() if len(x) else None


def evaluate_run(
    run_dir: str | Path, data: str | Path, split: str | None = None, data_format: str = "auto"
) -> dict[str, Any]:
    """ROC-AUC and PR-AUC, macro and per tag, of the run's best checkpoint on `data`.

    Args:
        split: Score only this split's clips (train, valid, test); None scores every clip.

    Raises:
        DataFormatError: the data set cannot be read.
        DataSetError: no clip in `split` can be scored, or the data set shares no tag with the run.
    """
    scorer = Scorer.load(run_dir)
    tagger = scorer.tagger
    # Not `open_dataset`: its checks are about training (a set to score needs no train
    # split, and a tag without training positives still counts here).
    dataset = load_dataset(Path(data), data_format)
    shared = [t for t in tagger.labels if t in dataset.labels]
    columns = [tagger.labels.index(t) for t in shared]
    if not shared:
        raise DataSetError(f"the run's tags ({', '.join(tagger.labels)}) and those of {data} have none in common")
    clips, rows, skipped = [], [], []
    for clip in dataset.clips:
        if split is not None and clip.split != split:
            continue
        try:
            probs = scorer.clip_probs(load_audio(clip.path, scorer.sample_rate))
        except AudioError as exc:
            skipped.append(str(exc))
            continue
        if probs is None:  # as the run's test: not scored (`data.datamodule.EvalChunks`)
            skipped.append(f"{clip.id}: silent throughout")
            continue
        clips.append(clip)
        rows.append(probs[columns])
    if not clips:
        raise DataSetError(f"no clip of {data} could be scored" + (f" in the {split} split" if split else ""))
    scores = tag_scores(torch.from_numpy(np.stack(rows)), torch.from_numpy(multi_hot(clips, shared)), shared)
    return {
        "data": str(Path(data).resolve()),
        "split": split or "all",
        "clips": len(clips),
        "skipped": skipped,
        "checkpoint": str(tagger.checkpoint),
        "tags_not_in_run": [t for t in dataset.labels if t not in shared],
        **scores,
    }
