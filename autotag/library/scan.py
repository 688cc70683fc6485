"""The files of a library: folders walked as they are read, never listed whole in memory.

`check_inputs` turns the paths a user gave into absolute ones and refuses what cannot be
tagged before anything is written: a path that does not exist, a folder without
`recursive`, anything that is neither a file nor a folder. `audio_files` then yields the
files: a file given is tagged whatever its name; a folder's files are those with one of
`formats` as their suffix (any case), in every subfolder, in name order. Names that start
with a dot (`.Trash`, macOS's `._song.mp3` shadow files) are skipped, and symlinked
folders are not followed (no loops); a folder that cannot be listed is reported, not fatal.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

from autotag.audio.decode import AUDIO_EXTENSIONS
from autotag.errors import UsageError
from autotag.paths import absolute
from autotag.text import shown

#: The formats a folder's files are chosen by, without their dots: wav, flac, ogg, mp3.
FORMATS = tuple(ext.lstrip(".") for ext in AUDIO_EXTENSIONS)


def parse_formats(text: str) -> tuple[str, ...]:
    """`wav,mp3` -> ('wav', 'mp3').

    Raises:
        UsageError: an empty list or a format autotag does not decode.
    """
    formats = tuple(dict.fromkeys(f.strip().lower().lstrip(".") for f in text.split(",") if f.strip()))
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise UsageError(f"--formats {shown(text)}: choose from {','.join(FORMATS)} (comma separated)")
    return formats


def check_inputs(paths: list[str], recursive: bool) -> list[Path]:
    """The paths as absolute ones, each once, and none inside a folder also given.

    Raises:
        UsageError: a path that does not exist, a folder without `recursive`, or something
            that is neither a file nor a folder (one line naming it).
    """
    inputs: list[Path] = []
    for given in paths:
        path = absolute(given)
        if path.is_dir():
            if not recursive:
                raise UsageError(f"{given} is a folder: add --recursive to tag the audio in it and its subfolders")
        elif not path.exists():
            raise UsageError(f"{given}: no such file or folder")
        elif not path.is_file():
            raise UsageError(f"{given} is neither a file nor a folder")
        if path not in inputs:
            inputs.append(path)
    folders = [p for p in inputs if p.is_dir()]
    return [p for p in inputs if not any(f != p and p.is_relative_to(f) for f in folders)]


def audio_files(
    inputs: list[Path], formats: tuple[str, ...] = FORMATS, unreadable: Callable[[str], None] | None = None
) -> Iterator[str]:
    """The files to tag, as absolute path strings; see the module's docstring.

    Args:
        unreadable: Called with a line for each folder that cannot be listed (default: ignored).
    """
    suffixes = tuple(f".{f}" for f in formats)

    def report(exc: OSError) -> None:
        if unreadable:
            unreadable(f"{exc.filename}: {exc.strerror or exc}")

    for path in inputs:
        if not path.is_dir():
            yield str(path)
            continue
        for folder, dirs, files in os.walk(path, onerror=report):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                if not name.startswith(".") and name.lower().endswith(suffixes):
                    yield os.path.join(folder, name)
