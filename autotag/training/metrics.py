"""Macro ROC-AUC and PR-AUC over tags, skipping tags that cannot be scored.

A tag with no positive (or no negative) example has no defined AUC; torchmetrics would
average in a 0 and warn, which silently drags the macro score down on small splits.
"""

from __future__ import annotations

import math

import torch
from torchmetrics.functional.classification import binary_auroc, binary_average_precision


def tag_scores(probs: torch.Tensor, targets: torch.Tensor, labels: list[str]) -> dict:
    """Per-tag and macro AUCs.

    Args:
        probs: (clips, tags) predicted probabilities.
        targets: (clips, tags) 0/1 ground truth.
        labels: Tag names in column order.

    Returns:
        {"roc_auc_macro", "pr_auc_macro", "per_tag": {tag: {"roc_auc", "pr_auc", "positives"}},
         "unscored_tags": [tags with no positive or no negative]}; macro values are NaN
        when no tag can be scored.
    """
    targets = targets.int()
    per_tag: dict[str, dict] = {}
    unscored: list[str] = []
    for j, tag in enumerate(labels):
        positives = int(targets[:, j].sum())
        if positives == 0 or positives == len(targets):
            unscored.append(tag)
            per_tag[tag] = {"roc_auc": None, "pr_auc": None, "positives": positives}
            continue
        per_tag[tag] = {
            "roc_auc": float(binary_auroc(probs[:, j], targets[:, j])),
            "pr_auc": float(binary_average_precision(probs[:, j], targets[:, j])),
            "positives": positives,
        }
    scored = [v for v in per_tag.values() if v["roc_auc"] is not None]
    return {
        "roc_auc_macro": sum(v["roc_auc"] for v in scored) / len(scored) if scored else math.nan,
        "pr_auc_macro": sum(v["pr_auc"] for v in scored) / len(scored) if scored else math.nan,
        "per_tag": per_tag,
        "unscored_tags": unscored,
    }


def unscored_note(scores: dict, split: str) -> str | None:
    """Why `split` has no macro ROC-AUC and PR-AUC (None when it has them), for the places
    that show them as "n/a": a value that cannot be computed is shown with its reason."""
    if len(scores["unscored_tags"]) < len(scores["per_tag"]):
        return None
    return f"no tag in the {split} split has both a positive and a negative clip, so ROC-AUC and PR-AUC are n/a"


def clip_average(chunk_probs: torch.Tensor, clip_index: torch.Tensor, n_clips: int) -> torch.Tensor:
    """Average chunk scores per clip.

    Args:
        chunk_probs: (chunks, tags).
        clip_index: (chunks,) clip number of each chunk, in [0, n_clips).

    Returns:
        (n_clips, tags) mean over each clip's chunks.
    """
    sums = torch.zeros(n_clips, chunk_probs.shape[1], dtype=chunk_probs.dtype, device=chunk_probs.device)
    sums.index_add_(0, clip_index, chunk_probs)
    counts = torch.bincount(clip_index, minlength=n_clips).clamp(min=1).unsqueeze(1)
    return sums / counts


def clip_level(
    chunk_probs: torch.Tensor, chunk_targets: torch.Tensor, clip_index: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Clip-level (probabilities, targets) from chunk rows, for the clips present.

    Args:
        chunk_probs: (chunks, tags); chunk_targets: (chunks, tags), equal for a clip's chunks;
        clip_index: (chunks,) clip number of each chunk.

    Returns:
        Two (clips present, tags) tensors, ordered by clip number.
    """
    present = torch.unique(clip_index)
    probs = clip_average(chunk_probs, clip_index, int(clip_index.max()) + 1)[present]
    targets = torch.zeros_like(probs)
    targets[torch.searchsorted(present, clip_index)] = chunk_targets.to(probs.dtype)
    return probs, targets
