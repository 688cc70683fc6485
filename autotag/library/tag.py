"""Tag a library: every audio file under some folders, a row per file, resumable.

`tag_library` streams the files (`scan.audio_files`), hands each to a pool of decoder
processes (`decoders.DecoderPool`, a few files ahead), scores each file's chunks with the
run's `Tagger` as they arrive (the decoders decode the next files meanwhile) and writes
its row (`store`) before the next. A file the library already holds as tagged, with the
same size and modification time, is skipped when resuming; a failed or changed file is
tagged again. A file that cannot be decoded gets a failed row with the reason.
"""

from __future__ import annotations

import os
import stat
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from threading import Event

import numpy as np
import torch

from autotag.audio.decode import AudioError
from autotag.audio.sandbox import DecodeLimits
from autotag.digests import sha256
from autotag.library.decoders import DecoderPool
from autotag.library.scan import FORMATS, audio_files
from autotag.library.store import FAILED, TAGGED, Library, LibraryMeta, Row, open_library
from autotag.serving.decide import decision_thresholds, tags_above, tuned_thresholds
from autotag.serving.tagger import Tagger

#: Chunks per forward pass on a CPU. `Tagger.predict` takes one at a time there, which is best
#: for one clip of a big network; over a library, 4 at a time cost `tiny` half the time per
#: chunk and `shortchunk_cnn` 7 % less (2-core CPU). A batch rounds differently from one
#: chunk: probabilities differ from `tag FILE`'s by float32 rounding (at most 1.2e-7 measured).
CPU_BATCH = 4
#: Failures a summary names; the rest are counted (every one is a row of the library).
SHOWN_FAILURES = 5
#: The largest magnitude float16 holds: an embedding is clipped to it before it is stored.
_F16_MAX = float(np.finfo(np.float16).max)


def default_workers() -> int:
    """Decoder processes by default: one per core, at most 4 (the forward passes use cores too)."""
    return max(1, min(os.cpu_count() or 1, 4))


@dataclass
class Summary:
    """What a library tagging did: files tagged, skipped (already in the library), failed."""

    tagged: int = 0
    skipped: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)  # the first SHOWN_FAILURES, "path: why"
    unreadable: list[str] = field(default_factory=list)  # folders that could not be listed

    def line(self, out: Path) -> str:
        line = f"tagged {self.tagged}, skipped {self.skipped} (already in {out.name}), failed {self.failed}"
        if self.unreadable:
            line += f"; {len(self.unreadable)} folders could not be read"
        return line


def library_meta(tagger: Tagger, run_dir: Path, thresholds: dict[str, float]) -> LibraryMeta:
    """What a library records of the model and thresholds that tag it."""
    return LibraryMeta(
        run=str(run_dir),
        checkpoint=tagger.checkpoint.name,
        checkpoint_sha256=sha256(tagger.checkpoint),
        labels=list(tagger.labels),
        thresholds=[float(thresholds[t]) for t in tagger.labels],
        sample_rate=tagger.sample_rate,
        chunk_samples=tagger.chunk_samples,
        embedding_width=int(tagger.module.net.head[-1].in_features),
    )


def tag_into(
    out: Path,
    run_dir: Path,
    inputs: list[Path],
    *,
    threshold: float | None = None,
    resume: bool = False,
    workers: int | None = None,
    formats: tuple[str, ...] = FORMATS,
    progress: Callable[[int], Callable[[int, int], None] | None] | None = None,
    stop: Event | None = None,
    note: Callable[[str], None] = lambda line: None,
) -> Summary:
    """`tag --out OUT` from its checked arguments: the run's model loaded, its thresholds (or
    `threshold` for every tag), the library opened (or resumed) and tagged into.

    Args:
        progress: Makes `tag_library`'s progress callback from the number of files, once the
            model is loaded and the files are counted (a walk of the names): a bar's clock
            starts with the tagging.
        note: Told what a user should know: which checkpoint was used when the best did not load.

    Raises:
        UsageError: the library cannot be opened (see `store.open_library`).
        RunError, CheckpointError: the run has no model that loads.
    """
    tagger = Tagger.load(run_dir)
    if tagger.note:
        note(tagger.note)
    thresholds = decision_thresholds(tagger.labels, tuned_thresholds(run_dir), threshold)
    with open_library(out, library_meta(tagger, run_dir, thresholds), resume) as library:
        total = count_files(inputs, formats) if progress else 0
        return tag_library(
            tagger,
            library,
            inputs,
            thresholds,
            resume=resume,
            workers=workers,
            formats=formats,
            progress=progress(total) if progress else None,
            total=total,
            stop=stop,
        )


def count_files(inputs: list[Path], formats: tuple[str, ...] = FORMATS) -> int:
    """How many files `audio_files` will give (a walk of the names; for a progress bar's total)."""
    return sum(1 for _ in audio_files(inputs, formats))


def tag_library(
    tagger: Tagger,
    library: Library,
    inputs: list[Path],
    thresholds: dict[str, float],
    *,
    resume: bool = False,
    workers: int | None = None,
    formats: tuple[str, ...] = FORMATS,
    progress: Callable[[int, int], None] | None = None,
    total: int | None = None,
    limits: DecodeLimits | None = None,
    stop: Event | None = None,
) -> Summary:
    """Tag the audio files under `inputs` into `library`; see the module's docstring.

    Args:
        resume: Skip a file the library holds as tagged with the same size and time.
        workers: Decoder processes (default `default_workers()`).
        progress: Called with (files done, files to do) after each file; skipped files
            count in neither. `total`: the files `inputs` hold (`count_files`), for it.
        limits: The decoders' limits (default: an upload decoder's).
        stop: Once set, no more rows are written: the files in flight are left for a resume.

    A Ctrl-C (KeyboardInterrupt) ends the decoders and comes out of this call: the rows
    written so far stay.
    """
    summary = Summary()
    files = audio_files(inputs, formats, summary.unreadable.append)
    workers = workers or default_workers()
    batch = CPU_BATCH if tagger.device.type == "cpu" else None  # None: the Tagger's own (16 on a GPU)

    def finish(row: Row) -> None:
        _record(row, library, summary)
        if progress:
            progress(summary.tagged + summary.failed, max(0, (total or 0) - summary.skipped))

    with (
        _cores_left_to_torch(tagger, workers),
        DecoderPool(workers, tagger.sample_rate, tagger.chunk_samples, limits) as pool,
    ):
        in_flight: deque = deque()  # (row so far, its ticket), in the order the decoders were given them

        def top_up() -> None:
            while len(in_flight) < 2 * workers:
                row = _next_to_tag(files, library, resume, summary)
                if row is None:
                    return
                if row.status == FAILED:
                    finish(row)
                else:
                    in_flight.append((row, pool.submit(row.path)))

        top_up()
        while in_flight and not (stop and stop.is_set()):
            row, ticket = in_flight.popleft()
            top_up()
            chunks = pool.chunks(ticket)
            try:
                prediction = tagger.predict_chunks(chunks, batch, embed=True)
            except AudioError as exc:
                row.status, row.error = FAILED, str(exc)
            else:
                row.duration, row.silent = prediction.duration, prediction.silent
                row.tags = tags_above(prediction, thresholds)
                row.probabilities = [prediction.clip[t] for t in tagger.labels]
                if prediction.embedding is not None:
                    row.embedding = np.clip(prediction.embedding, -_F16_MAX, _F16_MAX).astype(np.float16)
            finally:
                chunks.close()
            finish(row)
    return summary


@contextmanager
def _cores_left_to_torch(tagger: Tagger, workers: int) -> Iterator[None]:
    """On a CPU, torch's threads for the forward passes on the cores the decoders leave (at
    least one): a team of threads that competes with the decoders for a core waits on it at
    every operation (on our busy 2-core machine, `tag` over 40 files took 20 s with torch's
    2 threads and 4.4 s with 1)."""
    if tagger.device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, (os.cpu_count() or 1) - workers))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _next_to_tag(files: Iterator[str], library: Library, resume: bool, summary: Summary) -> Row | None:
    """The next file's row to fill (status TAGGED until it fails; FAILED already when it is
    not a regular file or is gone), skipping those already tagged; None when none is left."""
    for path in files:
        try:
            st = os.stat(path)
        except OSError as exc:
            return Row(path, 0, 0, FAILED, error=exc.strerror or str(exc))
        if not stat.S_ISREG(st.st_mode):
            return Row(path, 0, st.st_mtime_ns, FAILED, error="not a regular file")
        known = library.known(path) if resume else None
        if known and known.status == TAGGED and (known.size, known.mtime_ns) == (st.st_size, st.st_mtime_ns):
            summary.skipped += 1
            continue
        return Row(path, st.st_size, st.st_mtime_ns, TAGGED)
    return None


def _record(row: Row, library: Library, summary: Summary) -> None:
    library.write(row)
    if row.status == TAGGED:
        summary.tagged += 1
        return
    summary.failed += 1
    if len(summary.failures) < SHOWN_FAILURES:
        summary.failures.append(f"{row.path}: {row.error}")
