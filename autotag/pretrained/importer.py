"""`pretrained get`: a published tagger as an ordinary, completed run.

The run folder is what training would have left, so every part of the product (tagging,
export, robustness reports, evaluation, starting a new run from its weights) takes it as
it is: config.yaml with the network and its front end (its `data` is `published:NAME`,
the authors' data set), labels.json in output order, one checkpoint, and metrics.json whose
scores are marked as published (another test set: nothing ranks them against runs trained
here), with the source, licence and digest. Everything that can fail (finding the file,
its digest, its tensors) fails before the folder is made.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from autotag.access import Actor, check, record
from autotag.config import PUBLISHED_DATA, TrainConfig, make_config
from autotag.pretrained.catalogue import Published, published
from autotag.pretrained.fetch import Progress, locate
from autotag.store.files import write_json_atomic
from autotag.store.job import RunState
from autotag.store.run_folder import RunFolder, create_run, runs_folder

#: The checkpoint's name: `best-` makes it the run's best (`RunFolder.BEST_PREFIX`).
CHECKPOINT = f"{RunFolder.BEST_PREFIX}published.ckpt"


def imported(name: str, runs_dir: str | Path | None = None) -> Path | None:
    """The run of the runs folder that is published model `name`, if one was imported."""
    from autotag.runs.manager import list_runs

    for info in list_runs(runs_dir):
        if info.status.published == name and info.state is RunState.COMPLETED:
            return info.path
    return None


def get(
    name: str,
    given: str | Path | None = None,
    runs_dir: str | Path | None = None,
    actor: Actor | None = None,
    progress: Progress | None = None,
) -> Path:
    """The run of published model `name`: the one imported before (instant), else a new one.

    Args:
        given: The file to import (else the mirror, the cache or a download: `fetch.locate`).

    Raises:
        CatalogueError: no such model.
        FetchError: the file cannot be had or is not the published one.
        WeightsError: its tensors do not fit the network.
        AccessDenied: `actor` may not make runs.
    """
    from autotag.pretrained.weights import checkpoint
    from autotag.store.checkpoints import save_atomic

    entry = published(name)
    runs_dir = runs_folder(runs_dir)
    actor = check(actor, "launch", Path(name), None, runs_dir)
    file = locate(entry, given) if given is not None else None  # a file named is checked, even for a second get
    existing = imported(name, runs_dir)
    if existing is not None:
        return existing
    ckpt = checkpoint(entry, file or locate(entry, None, progress))
    run_dir = create_run(_config(entry), runs_dir, name)
    run = RunFolder(run_dir)
    # Never "queued" for the scheduler to train: a process killed before the end leaves a run
    # that says what happened (cleaned up below for anything short of a kill).
    run.write_status(state=RunState.FAILED, error=f"the import of {name} did not finish: get it again")
    try:
        save_atomic(ckpt, run.checkpoints / CHECKPOINT)
        write_json_atomic(run.labels, list(entry.tags))
        write_json_atomic(run.metrics, {"published": _facts(entry)})
    except BaseException:  # a full disk, a Ctrl-C: no half-made run left queued for the scheduler
        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    now = time.time()
    run.write_status(
        state=RunState.COMPLETED,
        phase="imported",
        owner=actor.name,
        published=name,
        max_epochs=None,  # nothing was trained here: the runs table shows no epochs, not 0/100
        best_checkpoint=f"{run.checkpoints.name}/{CHECKPOINT}",
        started=now,
        ended=now,
        error=None,
    )
    record(runs_dir, actor, "import", run_dir)
    return run_dir


def _config(entry: Published) -> TrainConfig:
    return make_config(
        data=f"{PUBLISHED_DATA}{entry.name}",
        model=entry.network,
        n_mels=96,
        f_max=8000.0,
        chunk_seconds=entry.chunk_seconds,
        level="absolute",  # the recipe's: they learned loudness as recorded, with no tempo branch
        tempo=False,
    )


def _facts(entry: Published) -> dict[str, object]:
    """The run's metrics file's `published` block: what its authors report, never measured here."""
    return {
        "name": entry.name,
        "network": entry.network,
        "trained_on": entry.trained_on,
        "roc_auc_macro": entry.roc_auc,
        "pr_auc_macro": entry.pr_auc,
        "scores_from": entry.scores_from,
        "note": "the authors' scores on their own test split, not measured here: not comparable to runs trained here",
        "credit": entry.credit,
        "licence": entry.licence,
        "url": entry.url,
        "sha256": entry.sha256,
    }
