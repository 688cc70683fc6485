"""User-given paths, pinned once where they enter the program.

A relative path means "relative to where the user typed it". Background trainers, the
pre-warmed trainer and DDP ranks run from other working directories, and Lightning records
checkpoint paths with symlinks resolved, so every path from a user (runs folder, run
folder, data folder, audio root, config file, export target) is made absolute and
resolved by `absolute` at the CLI, the Python API's entry functions and the dashboard's
inputs, and is stored that way (config.yaml holds the data folder absolute).
"""

from __future__ import annotations

import os
from pathlib import Path


def absolute(path: str | Path) -> Path:
    """`path` with `~` expanded, made absolute against the current folder, symlinks resolved."""
    return Path(path).expanduser().resolve()


def default_cache_root() -> Path:
    """The feature cache: `$AUTOTAG_CACHE_DIR`, else `~/.cache/autotag/features` (timed training
    steps are kept beside it)."""
    env = os.environ.get("AUTOTAG_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "autotag" / "features"
