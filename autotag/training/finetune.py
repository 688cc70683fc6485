"""Starting a run from an earlier one: its backbone's weights, a new head for the new tags.

Small data sets of one's own train better from a model that already learned to hear
instruments than from random weights. The source run's best checkpoint gives every
weight but the output layer; the new output layer keeps the rows of the tags both runs
share and starts the others fresh. The front end and the network must be the same: a
different mel count or architecture has weights of other shapes or meanings, so it is
refused with the difference named, before anything trains.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autotag.config import TrainConfig, checked_checkpoint_settings, validate_config
from autotag.store.checkpoints import checkpoint_candidates
from autotag.store.run_folder import RunError, RunFolder

if TYPE_CHECKING:  # torch stays out of the dashboard's start-up path (the Train page checks a source)
    import torch

    from autotag.training.module import TaggingModule

log = logging.getLogger("autotag.training.finetune")

#: What must be equal between a run and the run it starts from.
SAME = ("model", "sample_rate", "n_fft", "hop_length", "n_mels", "f_min", "f_max", "level")
#: A source's own start, left out when its config is read: a run started from a run started
#: from another (fine-tuning a linear probe's run, say) compares models, not ancestries.
NOT_STARTED_FROM = {"init_from": None, "freeze_epochs": 0, "transfer": "fine-tune", "backbone_lr_factor": 1.0}


def check_init_source(config: TrainConfig) -> None:
    """Refuse, before training, a source run whose model or front end differs, or that has no checkpoint.

    Reads only the source's config.yaml and its checkpoint names (no torch).

    Raises:
        RunError: the source is not a run, has no checkpoint, or differs; the message names how.
        ConfigError: the source's config.yaml cannot be read as a config.
    """
    if config.init_from is None:
        return
    source = RunFolder(Path(config.init_from))
    problem = source.not_a_run()
    if problem:
        raise RunError(f"cannot start from it: {problem}")
    theirs = validate_config({**source.read_config(), **NOT_STARTED_FROM})
    mine, other = _resolved(config), _resolved(theirs)
    diffs = [f"{k} {other[k]} there, {mine[k]} here" for k in SAME if mine[k] != other[k]]
    if diffs:
        raise RunError(
            f"cannot start from run {source.name}: its model differs ({'; '.join(diffs)}); "
            "choose the same model and feature settings, or start from scratch"
        )
    checkpoint_candidates(source.path)  # RunError when it has none yet


def source_settings(source_dir: str | Path) -> dict[str, Any]:
    """The source run's model and feature settings as its config.yaml has them, to copy into a new config.

    Raises:
        ConfigError: its config.yaml cannot be read.
    """
    raw = RunFolder(Path(source_dir)).read_config()
    return {k: raw[k] for k in (*SAME, "chunk_seconds") if k in raw}


def _resolved(config: TrainConfig) -> dict[str, Any]:
    return {"model": config.model, **config.feature_settings(), "level": config.level}


def init_from_run(module: TaggingModule, source_dir: str | Path) -> Path:
    """Load the source run's best checkpoint into `module`, all but the output layer's unshared rows.

    Only the source's own checkpoint files are read (`checkpoint_candidates`), and only one
    whose settings and labels a config could have given (`checked_checkpoint_settings`): its
    labels size the new head's copy loop.

    Returns:
        The checkpoint the weights came from.

    Raises:
        RunError: no checkpoint of the source loads, or its weights do not fit `module`.
    """
    import torch

    problems = []
    for path in checkpoint_candidates(source_dir):
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
            labels = checked_checkpoint_settings(ckpt["hyper_parameters"])["labels"]
            state = ckpt["state_dict"]
        except Exception as exc:  # a truncated or foreign file fails in many ways
            problems.append(f"{path.name}: {type(exc).__name__}: {exc}")
            continue
        _load(module, state, labels)
        shared = [t for t in module.labels if t in labels]
        log.info(
            "weights from %s (%d of %d tags shared: %s)",
            path,
            len(shared),
            len(module.labels),
            ", ".join(shared) or "none",
        )
        return path
    raise RunError(f"no checkpoint of {source_dir} loads: {'; '.join(problems)}")


def output_layer(module: TaggingModule) -> str:
    """State-dict prefix of the layer that maps features to tags: the last of the network's head."""
    return f"net.head.{len(module.net.head) - 1}."


#: State-dict prefix of the tempo branch (`models.architectures.TempoBranch`): a source without
#: one (a published model, an older run) leaves it to start fresh; a run without one leaves the source's out.
TEMPO = "net.pulse."


def fresh_layers(module: TaggingModule) -> tuple[str, ...]:
    """Prefixes of what learns like a new layer in a run started from another: the output layer and
    the tempo branch (trained while the backbone is frozen, at the full learning rate)."""
    return (output_layer(module), TEMPO)


def _tag_layers(module: TaggingModule) -> tuple[str, ...]:
    """Prefixes of the layers with a row per tag: the output layer, and the tempo branch's last."""
    pulse = module.net.pulse
    return (output_layer(module), *([f"{TEMPO}dense.{len(pulse.dense) - 1}."] if pulse is not None else []))


def _load(module: TaggingModule, state: dict[str, torch.Tensor], source_labels: list[str]) -> None:
    per_tag = _tag_layers(module)
    own = module.state_dict()
    taken = {
        k: v
        for k, v in state.items()
        if k.startswith(("frontend.", "net.")) and not k.startswith(per_tag) and (k in own or not k.startswith(TEMPO))
    }
    wrong = [k for k, v in taken.items() if k not in own or own[k].shape != v.shape]
    missing = [k for k in own if k not in taken and not k.startswith((*per_tag, TEMPO))]
    if wrong or missing:
        raise RunError(f"the source checkpoint's weights do not fit this model ({', '.join(wrong[:3]) or 'missing'})")
    taken.update({k: v for k, v in own.items() if k.startswith(TEMPO) and k not in taken})  # a new branch: fresh
    for layer in per_tag:  # rows of shared tags keep their trained values, the others start fresh
        for key in (layer + "weight", layer + "bias"):
            new, old = own[key].clone(), state.get(key)
            if old is not None and old.shape[1:] == new.shape[1:]:
                for j, tag in enumerate(module.labels):
                    if tag in source_labels:
                        new[j] = old[source_labels.index(tag)]
            taken[key] = new
    module.load_state_dict(taken, strict=True)
