"""The sha256 of a file, read in blocks: what a published model's file must match, and what
names a linear probe's cached embeddings after the network that made them."""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha256(file: Path) -> str:
    """The file's sha256 as hex, reading 1 MiB at a time (weights files are hundreds of MB)."""
    digest = hashlib.sha256()
    with file.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
