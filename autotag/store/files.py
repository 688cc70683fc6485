"""Files that several processes share: locked, atomically replaced, read with bounds and types.

Everything autotag's processes tell each other goes through files in run, sweep and report
folders (docs/architecture.md, "Processes and files"). These are the few ways they are
written and read, so that a reader never sees half a file, two writers never lose each
other's fields, and a damaged or hostile file ends in a message that names it.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields
from functools import cache
from pathlib import Path
from typing import Annotated, Any, get_type_hints

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError

from autotag.errors import AutotagError

#: Marks a temporary file as `.<target name>.tmp-<writer pid>`.
TMP_MARK = ".tmp-"

#: Seconds since the epoch, as `time.time()` gives them (up to the year 5138: a damaged file's
#: 1e300 would break every date shown).
Timestamp = Annotated[float, Field(ge=0.0, le=1e11, strict=True)]

#: A process id an OS can have (`os.kill` overflows beyond a C int). Strict, as the others:
#: JSON's `true` or `1.0` is no pid autotag wrote.
Pid = Annotated[int, Field(ge=1, le=2**31 - 1, strict=True)]

#: Epochs, steps, clips: counted from 0.
Count = Annotated[int, Field(ge=0, le=2**53, strict=True)]

#: The largest other JSON file of a run read (metrics.json, data_report.json of a big data set).
MAX_JSON_BYTES = 64 << 20


class JsonFileError(AutotagError):
    """A JSON file autotag reads is unreadable, too large, not JSON or nested beyond reason."""


def load_json(file: Path, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """The JSON value in `file`, read with a size bound.

    Files in run and sweep folders are anyone's to edit: a 2 GB file or `[[[[...` 200,000
    deep (Python's parser recurses) must end in an error that names the file, never a
    traceback in a listing that every page and command shares.

    Raises:
        FileNotFoundError: there is no such file.
        JsonFileError: it cannot be read, is larger than `max_bytes`, or is not JSON.
    """
    try:
        with file.open("rb") as fh:
            raw = fh.read(max_bytes + 1)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise JsonFileError(f"{file.name} cannot be read ({exc.strerror or exc})") from None
    if len(raw) > max_bytes:
        raise JsonFileError(f"{file.name} is larger than {max_bytes >> 20} MB")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise JsonFileError(f"{file.name} is not JSON") from None


@cache
def _field_adapters(record: type) -> dict[str, TypeAdapter[Any]]:
    """A validator for each field of a status record but its state, from the field's annotation."""
    hints = get_type_hints(record, include_extras=True)
    strict_floats = ConfigDict(allow_inf_nan=False)
    return {f.name: TypeAdapter(hints[f.name], config=strict_floats) for f in fields(record) if f.name != "state"}


def typed_fields(record: type, data: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The fields of `data` that `record` (a dataclass) declares, each checked against its
    annotation and bounds; and a short line per field that failed (left out of the values)."""
    values, problems = {}, []
    for name, adapter in _field_adapters(record).items():
        if data.get(name) is None:
            continue
        try:
            values[name] = adapter.validate_python(data[name])
        except ValidationError as exc:
            problems.append(f"{name}: {exc.errors()[0]['msg'].lower()}")
    return values, problems


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock between this machine's processes, held on `path` (created if missing)."""
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so that readers see the old or the new file, never a partial one.

    The temporary file sits next to the target (same filesystem, so `os.replace` is
    atomic) and carries the writer's pid, so a sweep can tell orphans from live writes.
    A float that is not finite (a metric with nothing to rank, a diverged loss) is written
    as null: JSON has no NaN, and a value that cannot be computed must not fail the writer.
    """
    tmp = path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}")
    try:
        with tmp.open("w", encoding="utf-8") as fh:
            json.dump(finite_or_none(data), fh, indent=2, allow_nan=False, default=str)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def text_head(file: Path, limit: int = 64_000) -> str:
    """The start of a run's text file for a person to read, whatever bytes it holds
    (a config.yaml autotag writes is about 1.5 KB; a damaged one may be binary or huge)."""
    try:
        with file.open("rb") as fh:
            return fh.read(limit).decode("utf-8", "replace")
    except OSError as exc:
        return f"({file.name} cannot be read: {exc.strerror or exc})"


def finite_or_none(value: Any) -> Any:
    """`value` with every non-finite float inside it (NaN, inf) replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    return value
