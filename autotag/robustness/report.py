"""A run's robustness report: its test scores when the audio is perturbed, against clean audio.

Each clip of the split is decoded once at the model's sample rate, then scored clean and
under every chosen perturbation and strength (`autotag.audio.perturb`). A score is exactly
what the run's test computed: log-mel features rounded to float16 as the feature cache
stores them, up to `eval_chunks` evenly spaced chunks, the trained network (as trained,
not the faster inference copy, whose rounding differs), the mean of the chunks' sigmoids.
So the clean row reproduces metrics.json's test ROC-AUC (of a run trained in float32, the
CPU default: a mixed-precision run tested under autocast), and a row's change is the
perturbation's alone.

The report (its shape: README, "Robustness report") gives macro and per-tag ROC-AUC and
PR-AUC per condition, and per perturbed condition the share of (clip, tag) decisions at
the run's thresholds that differ from the clean audio's. Work goes clip by clip, so a
stopped report keeps the clips it scored (`Progress`, saved with the request they were
scored for) and a restart with the same request goes on from there.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from autotag.audio.decode import AudioError, load_audio
from autotag.audio.perturb import PERTURBATIONS, get, perturb
from autotag.data.formats import Clip, multi_hot
from autotag.robustness.job import ReportFolder, RobustnessError, check_request
from autotag.serving.decide import decision_thresholds, tuned_thresholds
from autotag.serving.evaluate import Scorer
from autotag.serving.tagger import Tagger
from autotag.training.metrics import tag_scores

CLEAN = "clean"
#: Seconds between saves of the clips scored so far (and at a stop, and at the end).
SAVE_EVERY_S = 5.0

log = logging.getLogger("autotag.robustness")

Condition = tuple[str, float | None]  # (perturbation, strength); (CLEAN, None) for the clean audio


def conditions(perturbations: Sequence[str]) -> list[Condition]:
    """Clean first, then each perturbation's strengths in its own order (mildest first)."""
    return [(CLEAN, None)] + [(name, s) for name in perturbations for s in get(name).strengths]


def condition_key(condition: Condition) -> str:
    name, strength = condition
    return CLEAN if strength is None else f"{name}/{get(name).label(strength)}"


@dataclass
class Progress:
    """Per condition, the clip probabilities scored so far, one row per clip done, and the
    request they were scored for (a resume takes them only for the same request)."""

    request: str = ""  # the request as canonical JSON
    clips: list[str] = field(default_factory=list)
    probs: dict[str, list[np.ndarray]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)  # per perturbation (and clean), all clips
    skipped: dict[str, str] = field(default_factory=dict)  # clip id -> why it could not be decoded

    def save(self, path: Path) -> None:
        """Written atomically, so a report killed mid-write leaves the previous save."""
        tmp = path.with_name(f".{path.name}.tmp")
        with tmp.open("wb") as fh:
            np.savez(
                fh,
                request=np.array(self.request),
                clips=np.array(self.clips, dtype=str),
                skipped=np.array([f"{k}\t{v}" for k, v in self.skipped.items()], dtype=str),
                seconds=np.array([f"{k}\t{v}" for k, v in self.seconds.items()], dtype=str),
                **{f"p:{key}": np.array(rows, dtype=np.float32) for key, rows in self.probs.items()},
            )
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path, request: str) -> Progress | None:
        """The saved progress of `request`; None when there is none (or it is another's)."""
        try:
            with np.load(path) as data:
                if str(data["request"]) != request:
                    return None
                progress = cls(request=request, clips=[str(c) for c in data["clips"]])
                progress.skipped = dict(str(s).split("\t", 1) for s in data["skipped"])
                progress.seconds = {k: float(v) for k, v in (str(s).split("\t", 1) for s in data["seconds"])}
                progress.probs = {k[2:]: list(data[k]) for k in data.files if k.startswith("p:")}
        except (OSError, ValueError, KeyError):
            return None
        if any(len(rows) != len(progress.clips) for rows in progress.probs.values()):
            return None
        return progress


def clip_rng(seed: int, condition: Condition, clip_index: int) -> np.random.Generator:
    """The noise of one clip under one condition: the same for a rerun, a resume, any order."""
    name, strength = condition
    return np.random.default_rng([seed, zlib.crc32(name.encode()), zlib.crc32(repr(strength).encode()), clip_index])


def score_clips(
    scorer: Scorer,
    clips: Sequence[Clip],
    todo: Sequence[Condition],
    seed: int,
    progress: Progress,
    on_clip: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> bool:
    """Score every clip not yet in `progress` under every condition; whether all were done.

    `on_clip` is called after each clip (a save, a status line); `should_stop` is asked
    before each clip, so a stop loses at most the clip in progress.
    """
    done = set(progress.clips) | set(progress.skipped)
    for index, clip in enumerate(clips):
        if clip.id in done:
            continue
        if should_stop():
            return False
        start = time.perf_counter()
        try:
            wave = load_audio(clip.path, scorer.sample_rate)
        except AudioError as exc:
            progress.skipped[clip.id] = str(exc)
            continue
        progress.seconds["decode"] = progress.seconds.get("decode", 0.0) + time.perf_counter() - start
        rows = {}  # kept apart until the clip is whole: an interrupt never leaves half a clip
        for condition in todo:
            start = time.perf_counter()
            name, strength = condition
            rng = clip_rng(seed, condition, index)
            heard = wave if strength is None else perturb(wave, scorer.sample_rate, name, strength, rng)
            probs = scorer.clip_probs(heard)
            if probs is None and strength is None:  # as the run's test: a silent clip is not scored
                break
            # Perturbed into silence (a quiet clip made quieter): it tags nothing, as `tag` would.
            rows[condition_key(condition)] = probs if probs is not None else np.zeros(len(scorer.tagger.labels), "f4")
            progress.seconds[name] = progress.seconds.get(name, 0.0) + time.perf_counter() - start
        if len(rows) < len(todo):
            progress.skipped[clip.id] = "silent throughout"
            continue
        for key, row in rows.items():
            progress.probs.setdefault(key, []).append(row)
        progress.clips.append(clip.id)
        if on_clip:
            on_clip(progress)
    return True


def summarize(
    progress: Progress,
    clips: Sequence[Clip],
    labels: list[str],
    todo: Sequence[Condition],
    thresholds: dict[str, float],
) -> dict[str, Any]:
    """The report, `{"clean": row, perturbation: {strength: row + "flipped"}}`, from the scored clips."""
    by_id = {c.id: c for c in clips}
    targets = torch.from_numpy(multi_hot([by_id[i] for i in progress.clips], labels))
    cut = np.array([thresholds[t] for t in labels], dtype=np.float32)
    clean = np.stack(progress.probs[CLEAN])
    report: dict[str, Any] = {}
    for condition in todo:
        probs = np.stack(progress.probs[condition_key(condition)])
        scores = tag_scores(torch.from_numpy(probs), targets, labels)
        row = {k: scores[k] for k in ("roc_auc_macro", "pr_auc_macro", "per_tag")}
        name, strength = condition
        if strength is None:
            report[CLEAN] = row
            continue
        row["flipped"] = float(np.mean((probs >= cut) != (clean >= cut)))
        report.setdefault(name, {})[get(name).label(strength)] = row
    return report


def make_report(
    run_dir: Path,
    split: str = "test",
    perturbations: Sequence[str] = tuple(PERTURBATIONS),
    seed: int = 0,
    stop: threading.Event | None = None,
    data: str | Path | None = None,
) -> dict[str, Any] | None:
    """Score the run's `split` clean and perturbed; write and return the report.

    Goes on from the clips a stopped report with the same request scored. SIGTERM (Stop),
    or `stop` set, ends it after the clip in hand, saved; it then returns None.

    Args:
        data: A data set folder (any layout `fit` reads) whose split is scored instead of the
            run's own: a published model's data set is not here. Its tags that the model
            has count; the model's other tags have no positives there and are not scored.

    Raises:
        RobustnessError: the request is refused (`job.check_request`).
    """
    from autotag.config import load_config, validate_config
    from autotag.data.prepare import open_dataset
    from autotag.paths import absolute
    from autotag.store.files import write_json_atomic
    from autotag.store.job import RunState
    from autotag.store.procs import process_start_time

    # A caller with its own stop event is the report's process (`job.main`), which `job.start`
    # started after checking, under a lock, that no other report of the run was running.
    data = str(absolute(data)) if data else None
    run = check_request(run_dir, split, perturbations, running=stop is None, data=data)
    folder = ReportFolder(run.path)
    if stop is None:
        stop = threading.Event()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, lambda *_: stop.set())
    pid = os.getpid()
    folder.write_status(
        state=RunState.RUNNING, pid=pid, pid_start=process_start_time(pid), error=None, ended=None, data=data
    )
    try:
        tagger = Tagger.load(run.path)
        config = load_config(run.config)
        if data:  # the same model and features; another data set, its layout found anew
            config = validate_config({**config.model_dump(), "data": data, "format": "auto"})
        _, dataset = open_dataset(config)
        clips = dataset.split(split)
        if not clips:
            raise RobustnessError(f"the {split} split of {config.data} has no clips")
        request = {
            "data": config.data,
            "split": split,
            "perturbations": list(perturbations),
            "seed": seed,
            "checkpoint": f"{tagger.checkpoint.name}:{tagger.checkpoint_mtime_ns}",  # as loaded, even if gone since
            "clips": [c.id for c in clips],
        }
        key = json.dumps(request, sort_keys=True)
        progress = Progress.load(folder.progress, key) or Progress(request=key)
        write_json_atomic(folder.request, request)
        todo = conditions(perturbations)
        done = len(progress.clips) + len(progress.skipped)
        folder.write_status(started=time.time(), done_at_start=done, done=done, total=len(clips), split=split)
        saved = time.monotonic()

        def on_clip(p: Progress) -> None:
            nonlocal saved
            folder.write_status(done=len(p.clips) + len(p.skipped))
            if time.monotonic() - saved >= SAVE_EVERY_S:
                p.save(folder.progress)
                saved = time.monotonic()
                eta = folder.read_status().eta_s()
                log.info(
                    "%d of %d clips scored%s", len(p.clips), len(clips), f", about {eta:.0f} s left" if eta else ""
                )

        scorer = Scorer(tagger, config)
        try:
            finished = score_clips(scorer, clips, todo, seed, progress, on_clip, stop.is_set)
        except KeyboardInterrupt:  # Ctrl-C in the foreground: a stop, like SIGTERM
            finished = False
        progress.save(folder.progress)
        if not finished:
            folder.write_status(state=RunState.STOPPED, ended=time.time())
            log.info("stopped after %d of %d clips; run it again to go on", len(progress.clips), len(clips))
            return None
        if not progress.clips:
            raise RobustnessError(f"no clip of the {split} split could be decoded")
        labels = tagger.labels
        report = summarize(progress, clips, labels, todo, decision_thresholds(labels, tuned_thresholds(run.path)))
        write_json_atomic(folder.report, report)
        folder.write_status(
            state=RunState.COMPLETED, ended=time.time(), seconds=progress.seconds, skipped=len(progress.skipped)
        )
        return report
    except BaseException as exc:
        folder.write_status(state=RunState.FAILED, ended=time.time(), error=f"{type(exc).__name__}: {exc}")
        raise
