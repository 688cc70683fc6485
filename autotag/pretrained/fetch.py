"""Where a published model's file comes from, in this order:

1. a file the user names (`pretrained get NAME --from FILE`);
2. a local mirror, the folder `$AUTOTAG_PRETRAINED_DIR` (air-gapped clusters, tests, CI);
3. the download cache, `~/.cache/autotag/pretrained`;
4. a download from the catalogue's pinned URL into that cache.

Whatever the source, the file is used only when its sha256 is the catalogue's: a mirror or
a download can be wrong, and a checkpoint is code's input. Offline, the download fails
within `TIMEOUT_S` and says what to do instead.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from autotag.digests import sha256
from autotag.errors import AutotagError
from autotag.paths import absolute
from autotag.pretrained.catalogue import Published

#: A folder holding the catalogue's files under their `file` names: the local mirror.
MIRROR_ENV = "AUTOTAG_PRETRAINED_DIR"
#: Seconds a download may wait for the server (each connect and each read).
TIMEOUT_S = 10.0
#: (bytes so far, bytes in all): a download's progress, for a bar.
Progress = Callable[[int, int], None]


class FetchError(AutotagError):
    """The file cannot be had, or is not the published one; the message says what to do."""


def cache_dir() -> Path:
    """Where downloads are kept: next to autotag's feature cache."""
    return Path.home() / ".cache" / "autotag" / "pretrained"


def checked(entry: Published, file: Path) -> Path:
    """`file` if it is the published file of `entry` (its digest).

    Raises:
        FetchError: missing, unreadable, or another file.
    """
    try:
        got = sha256(file)
    except OSError as exc:
        raise FetchError(f"cannot read {file}: {exc.strerror or exc}") from None
    if got != entry.sha256:
        raise FetchError(
            f"{file} is not the published {entry.name}: "
            f"its sha256 is {got[:16]}..., the catalogue's {entry.sha256[:16]}..."
        )
    return file


def locate(entry: Published, given: str | Path | None = None, progress: Progress | None = None) -> Path:
    """The checked file of `entry`, from the first source that has it (see the module's list).

    Raises:
        FetchError: the named file or the mirror's is not the published one, or there is no
            mirror and the download fails (offline: the message names the URL and `--from`).
    """
    if given is not None:
        return checked(entry, absolute(given))
    mirror = os.environ.get(MIRROR_ENV)
    if mirror:
        file = absolute(mirror) / entry.file
        if not file.is_file():
            raise FetchError(f"{entry.file} is not in {MIRROR_ENV}={mirror}; put it there, or give --from FILE")
        return checked(entry, file)
    cached = cache_dir() / entry.file
    if cached.is_file():
        try:
            return checked(entry, cached)
        except FetchError:
            cached.unlink(missing_ok=True)  # a damaged download: fetched again below
    return checked(entry, download(entry.url, cached, entry.size, progress))


def download(url: str, dest: Path, size: int, progress: Progress | None = None) -> Path:
    """`url` into `dest`, through a temporary file renamed when whole; at most twice `size` bytes.

    Raises:
        FetchError: no connection (offline), an HTTP error, too large, or a disk that cannot take it.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(f".{dest.name}.part-{os.getpid()}")
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response, part.open("wb") as out:
            total = int(response.headers.get("Content-Length") or size)
            done = 0
            for block in iter(lambda: response.read(1 << 16), b""):
                done += len(block)
                if done > 2 * size:
                    raise FetchError(f"{url} sends more than twice the {size:,} bytes of the published file; stopped")
                out.write(block)
                if progress:
                    progress(done, total)
        os.replace(part, dest)
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise FetchError(
            f"cannot download {url} ({reason}); without the internet, give the file with --from FILE "
            f"or a folder of them with {MIRROR_ENV}"
        ) from None
    except OSError as exc:
        raise FetchError(f"cannot write {dest}: {exc.strerror or exc}") from None
    finally:
        part.unlink(missing_ok=True)
    return dest
