"""Checks a data set before training and keeps only what can be trained on.

The report lists every problem by clip so that a user sees exactly what was skipped;
`usable_dataset` applies it. Decoding failures are found while the feature cache is
built (each file is decoded once) and added to the same report there.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field

from autotag.config import ConfigError, checked_labels
from autotag.data.formats import SPLITS, Clip, TaggedDataset
from autotag.errors import AutotagError


class DataSetError(AutotagError):
    """The data set cannot be trained on at all; the message says why."""


@dataclass
class ValidationReport:
    """What is wrong with a data set, by clip id.

    Attributes:
        split_sizes: Usable clips per split after every check.
        tag_counts: Positives per tag and split among usable clips.
        unlearnable_tags: Tags without positives in the training split (removed).
        tags_without_positives: Split name -> tags with no positive there (reported only).
    """

    total_rows: int = 0
    reader_problems: list[str] = field(default_factory=list)
    missing_files: list[str] = field(default_factory=list)
    undecodable: list[str] = field(default_factory=list)
    untagged: list[str] = field(default_factory=list)
    duplicate_ids: list[str] = field(default_factory=list)
    unlearnable_tags: list[str] = field(default_factory=list)
    tags_without_positives: dict[str, list[str]] = field(default_factory=dict)
    split_sizes: dict[str, int] = field(default_factory=dict)
    tag_counts: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def skipped(self) -> int:
        return len(self.missing_files) + len(self.undecodable) + len(self.untagged) + len(self.duplicate_ids)

    def unrankable(self, split: str) -> tuple[list[str], list[str]]:
        """(tags on every clip of `split`, tags on none): the tags its ROC-AUC and PR-AUC
        cannot rank, since ranking a tag needs a clip with it and one without."""
        counts, size = self.tag_counts.get(split, {}), self.split_sizes.get(split, 0)
        return [t for t, n in counts.items() if n == size], [t for t, n in counts.items() if n == 0]

    def summary_lines(self, limit: int = 5) -> list[str]:
        """Human-readable lines; long lists show their first `limit` entries."""
        lines = [
            f"{self.total_rows} rows, {sum(self.split_sizes.values())} usable: "
            + ", ".join(f"{s} {n}" for s, n in self.split_sizes.items())
        ]
        for title, items in (
            ("reader problems", self.reader_problems),
            ("missing audio files", self.missing_files),
            ("undecodable audio", self.undecodable),
            ("rows without tags", self.untagged),
            ("duplicate ids", self.duplicate_ids),
            ("tags without positives in train (removed)", self.unlearnable_tags),
        ):
            if items:
                lines.append(f"skipped {len(items)} {title}: {_listed(items, limit)}")
        for split, tags in self.tags_without_positives.items():
            if tags:
                many = "tags have" if len(tags) > 1 else "tag has"
                lines.append(f"{len(tags)} {many} no positive in {split}: {_listed(tags, limit)}")
        lines += [line for split in ("valid", "test") if (line := self._unrankable_line(split, limit))]
        return lines

    def _unrankable_line(self, split: str, limit: int) -> str | None:
        """Says so when `split` can rank no tag at all: its macro scores will be n/a.

        Not an error: training and the best checkpoint go by val_loss, which is defined.
        """
        everywhere, nowhere = self.unrankable(split)
        size = self.split_sizes.get(split, 0)
        if not size or len(everywhere) + len(nowhere) < len(self.tag_counts.get(split, {})):
            return None
        on_all = "on its one clip" if size == 1 else f"on all {size} of its clips"
        where = [f"{on_all}: {_listed(everywhere, limit)}"] if everywhere else []
        where += [f"on none: {_listed(nowhere, limit)}"] if nowhere else []
        then = "; the best checkpoint is still chosen by val_loss" if split == "valid" else ""
        return (
            f"no tag can be ranked in {split} (each needs a clip with it and one without; {'; '.join(where)}): "
            f"its ROC-AUC and PR-AUC will be n/a{then}"
        )

    def to_dict(self) -> dict:
        return asdict(self)


def _listed(items: list[str], limit: int) -> str:
    """The first `limit` items, and how many more there are; never "and 1 more" for the one it could name."""
    if len(items) <= limit + 1:
        return ", ".join(items)
    return ", ".join(items[:limit]) + f" ... and {len(items) - limit} more"


def check_dataset(
    dataset: TaggedDataset, undecodable: frozenset[str] = frozenset()
) -> tuple[ValidationReport, TaggedDataset]:
    """Check every clip and return the report plus the data set of usable clips.

    Args:
        dataset: As read by `formats.load_dataset`.
        undecodable: Ids of clips whose audio failed to decode (from the feature cache).
    """
    report = ValidationReport(total_rows=len(dataset.clips) + len(dataset.dropped))
    report.reader_problems = list(dataset.dropped)
    seen: set[str] = set()
    candidates: list[Clip] = []
    for clip in dataset.clips:
        if clip.id in seen:
            report.duplicate_ids.append(clip.id)
        elif not clip.path.is_file():
            report.missing_files.append(clip.id)
        elif clip.id in undecodable or clip.path.stat().st_size == 0:
            report.undecodable.append(clip.id)
        else:
            candidates.append(clip)
        seen.add(clip.id)
    train_counts = Counter(t for c in candidates if c.split == "train" for t in c.tags)
    labels = [t for t in dataset.labels if train_counts[t] > 0]
    report.unlearnable_tags = [t for t in dataset.labels if train_counts[t] == 0]
    keep = set(labels)
    usable = []
    for clip in candidates:
        tags = tuple(t for t in clip.tags if t in keep)
        if tags:
            usable.append(Clip(clip.id, clip.path, tags, clip.split))
        else:
            report.untagged.append(clip.id)
    for split in SPLITS:
        clips = [c for c in usable if c.split == split]
        counts = Counter(t for c in clips for t in c.tags)
        report.split_sizes[split] = len(clips)
        report.tag_counts[split] = {t: counts[t] for t in labels}
        report.tags_without_positives[split] = [t for t in labels if counts[t] == 0]
    return report, TaggedDataset(dataset.root, dataset.format, usable, labels, list(dataset.dropped))


def require_trainable(report: ValidationReport, dataset: TaggedDataset) -> None:
    """Raise DataSetError when nothing sensible can be trained on `dataset`."""
    if not dataset.clips:
        detail = "; ".join(report.summary_lines()[1:3])
        raise DataSetError(f"data set {dataset.root} has no usable clips" + (f" ({detail})" if detail else ""))
    if len(dataset.labels) < 2:
        raise DataSetError(
            f"data set {dataset.root} has {len(dataset.labels)} tag(s) with training examples; "
            "multi-label tagging needs at least 2"
        )
    for split in ("train", "valid"):
        if report.split_sizes.get(split, 0) == 0:
            raise DataSetError(f"data set {dataset.root} has no usable clips in the {split} split")
    try:
        checked_labels(dataset.labels)
    except ConfigError as exc:
        raise DataSetError(f"data set {dataset.root}: its tags cannot be a model's ({exc})") from None
