"""Tracks like a given one: `python -m autotag similar --library LIB FILE [--k 10]`.

A file the library holds is compared by its stored embedding; any other audio file is
first scored by the library's own tagger (`browse.clip_tagger`: the checkpoint `meta`
names, checked by its sha256) as `tag --out` scores it, so its embedding is one the
library's can be compared with. The search is `browse.similar` / `browse.similar_to`:
cosine similarity by numpy brute force over every stored embedding.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from autotag.errors import UsageError
from autotag.library import browse
from autotag.library.browse import Neighbour
from autotag.library.store import FAILED
from autotag.paths import absolute
from autotag.text import shown


@dataclass(frozen=True)
class Found:
    """The neighbours of a track, and how its embedding was had (for a note to the user)."""

    neighbours: list[Neighbour]
    in_library: bool


def stored_paths(given: str) -> list[str]:
    """The ways a library may name the file a user typed: absolute as typed (a symlinked file
    keeps its own name in a walk), and with every symlink resolved."""
    as_typed = os.path.abspath(os.path.expanduser(given))
    resolved = str(absolute(given))
    return [as_typed] if resolved == as_typed else [as_typed, resolved]


def find_similar(library: str | Path, target: str, k: int = 10) -> Found:
    """The `k` tracks of `library` nearest to `target` (a path the library holds, or an audio file).

    Raises:
        LibraryFileError: no library; UsageError: a target that is neither in the library
        nor a file, one the library failed on or found silent, or a library whose checkpoint
        is gone or changed (another model's embeddings are not comparable); RunError: the
        library's run cannot be loaded; AudioError: the file does not decode.
    """
    for path in stored_paths(target):
        row_id = browse.file_id(library, path)
        if row_id is None:
            continue
        row = browse.file_row(library, row_id) or {}
        if not row.get("embedded"):
            why = f"it failed ({row.get('error')})" if row.get("outcome") == FAILED else "it is silent throughout"
            raise UsageError(f"{shown(target)} has no embedding in {Path(library).name}: {why}")
        return Found(browse.similar(library, row_id, k), in_library=True)
    if not Path(target).is_file():
        raise UsageError(f"{shown(target)} is neither a file in {Path(library).name} nor an audio file")
    from autotag.library.tag import CPU_BATCH  # torch: only for a file from outside

    facts = browse.read_facts(library)
    tagger, note = browse.clip_tagger(facts)
    if note:
        raise UsageError(f"{note}: another model's embeddings are not comparable with the library's")
    prediction = tagger.predict(
        absolute(target), batch_size=CPU_BATCH if tagger.device.type == "cpu" else None, embed=True
    )
    if prediction.embedding is None:
        raise UsageError(f"{shown(target)} is silent throughout: it has no embedding to compare")
    return Found(browse.similar_to(library, prediction.embedding, k), in_library=False)
