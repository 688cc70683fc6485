"""How well a trained run tags another data set: its best checkpoint against that set's labels.

A run's own test split was drawn from the data it trained on. Recordings it never heard
(another soundfont, another collection) say more about what a user will get; the scores
count only the tags both share, clip by clip, as `autotag tag` would tag each file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from autotag.audio.decode import AudioError
from autotag.data.checks import DataSetError
from autotag.data.formats import load_dataset, multi_hot
from autotag.serving.tagger import Tagger
from autotag.training.metrics import tag_scores


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
    tagger = Tagger.load(run_dir)
    # Not `open_dataset`: its checks are about training (a set to score needs no train
    # split, and a tag without training positives still counts here).
    dataset = load_dataset(Path(data), data_format)
    shared = [t for t in tagger.labels if t in dataset.labels]
    if not shared:
        raise DataSetError(f"the run's tags ({', '.join(tagger.labels)}) and those of {data} have none in common")
    clips, rows, skipped = [], [], []
    for clip in dataset.clips:
        if split is not None and clip.split != split:
            continue
        try:
            scores = tagger.predict(clip.path).clip
        except AudioError as exc:
            skipped.append(str(exc))
            continue
        clips.append(clip)
        rows.append([scores[t] for t in shared])
    if not clips:
        raise DataSetError(f"no clip of {data} could be scored" + (f" in the {split} split" if split else ""))
    scores = tag_scores(torch.tensor(rows), torch.from_numpy(multi_hot(clips, shared)), shared)
    return {
        "data": str(Path(data).resolve()),
        "split": split or "all",
        "clips": len(clips),
        "skipped": skipped,
        "checkpoint": str(tagger.checkpoint),
        "tags_not_in_run": [t for t in dataset.labels if t not in shared],
        **scores,
    }
