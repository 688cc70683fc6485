"""Multi-process runs (Lightning's DDP): who may write, and evaluation over all ranks.

Under DDP every device has its own process running the same program: Lightning's own
launcher re-executes this process's command line for ranks 1..N-1, and torchrun or SLURM
start all ranks at once. They share one run folder, so only rank 0 writes to it. Each
rank validates a shard of the chunks, so clip-level scores (which average all of a
clip's chunks) are computed from the rows of every rank, and are then identical to a
single-process run's.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from autotag.store.run_folder import RunError

if TYPE_CHECKING:  # the dashboard imports this module (launch environments) and must not load torch
    import torch

    from autotag.config import TrainConfig

#: Variables in which Lightning's launcher, torchrun, SLURM or LSF give a process its rank.
RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK")
#: What a launcher leaves in the environment for its own process group; a new run started
#: from such a process must not inherit them, or it would try to join the old group.
LAUNCH_VARIABLES = (*RANK_VARIABLES, "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "PL_GLOBAL_SEED")

#: One evaluation row block: (logits (n, tags), targets (n, tags), clip numbers (n,), chunk numbers (n,)).
EvalRows = tuple["torch.Tensor", "torch.Tensor", "torch.Tensor", "torch.Tensor"]


def is_rank_zero() -> bool:
    """True unless a launcher marked this process as a rank other than 0.

    Decided from the environment because the run folder is set up before the Trainer
    (and its process group) exists.
    """
    for name in RANK_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value and value != "0":
            return False
    return True


def launched_by_cluster() -> bool:
    """True under SLURM (`srun`), torchrun, or a hand-set multi-node rendezvous, which start every rank."""
    env = os.environ
    return (
        int(env.get("SLURM_NTASKS", "1") or 1) > 1
        or "TORCHELASTIC_RUN_ID" in env
        or ("MASTER_ADDR" in env and "NODE_RANK" in env)
    )


def not_here(num_nodes: int) -> str:
    """Why a run on several machines is not started from this one (the CLI and the dashboard)."""
    return (
        f"num_nodes is {num_nodes}: a run on several machines is started by SLURM or torchrun on every "
        "machine, not from here; get its job script with `python -m autotag runs export-slurm`"
    )


def check_devices(config: TrainConfig) -> None:
    """Refuse a GPU run on a machine without the GPUs it asks for, before a run folder exists.

    Lightning would refuse it too, but only in the trainer, leaving a failed run behind.
    torch is imported only for `accelerator: gpu`: the dashboard calls this when it launches.

    Raises:
        RunError: no GPU that torch can use, or fewer than `devices`.
    """
    if config.accelerator != "gpu":
        return
    import torch

    found = torch.cuda.device_count() if torch.cuda.is_available() else int(torch.backends.mps.is_available())
    if found == 0:
        raise RunError("accelerator is gpu, but torch finds no GPU on this machine; choose accelerator auto or cpu")
    if found < config.devices:
        raise RunError(
            f"devices is {config.devices} with accelerator gpu, but this machine has {found} GPU(s) that torch "
            f"can use; choose devices {found} or fewer"
        )


def clean_launch_env(env: dict[str, str]) -> dict[str, str]:
    """`env` without a launcher's rank and rendezvous variables."""
    return {k: v for k, v in env.items() if k not in LAUNCH_VARIABLES}


def _world_size() -> int:
    import torch

    dist = torch.distributed
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def gather_eval_rows(rows: Sequence[EvalRows], n_tags: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(logits, targets, clip numbers) of every chunk scored on any rank, in chunk order.

    Every rank must call this (it is a collective under DDP). Lightning pads each rank's
    shard of a validation set to equal length by repeating chunks; rows are therefore
    de-duplicated by chunk number, so each chunk counts once, as without DDP.
    """
    import torch

    if rows:
        logits, targets, clips, chunks = (torch.cat(parts) for parts in zip(*rows))
    else:  # a rank can get no chunk when there are fewer chunks than ranks
        logits, targets = torch.empty(0, n_tags), torch.empty(0, n_tags)
        clips, chunks = torch.empty(0, dtype=torch.long), torch.empty(0, dtype=torch.long)
    if _world_size() > 1:
        shards: list[list[torch.Tensor] | None] = [None] * _world_size()
        torch.distributed.all_gather_object(shards, [logits, targets, clips, chunks])
        logits, targets, clips, chunks = (torch.cat([s[i] for s in shards]) for i in range(4))
    unique, inverse = torch.unique(chunks, return_inverse=True)  # sorted chunk numbers
    first = torch.full((len(unique),), len(chunks), dtype=torch.long)
    first.scatter_reduce_(0, inverse, torch.arange(len(chunks)), reduce="amin")
    return logits[first], targets[first], clips[first]
