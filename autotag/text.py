"""Users' values quoted in messages: short, however large or nested the value is.

An error message quotes what was given so the user sees what was wrong, but a value can be
megabytes (a pasted file, a YAML alias bomb): the message quotes a short prefix of it.
"""

from __future__ import annotations

import reprlib
from typing import Any

#: The most characters of a user's value that a message quotes.
SHOWN_CHARS = 60

_REPR = reprlib.Repr()
_REPR.maxlevel = 2
_REPR.maxstring = SHOWN_CHARS
_REPR.maxother = SHOWN_CHARS


def shorten(text: str, limit: int = SHOWN_CHARS) -> str:
    """`text` cut to `limit` characters, marked where cut."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def one_line(text: str, limit: int = 300) -> str:
    """A message that spans lines (torch's, PyYAML's) as one line of at most `limit` characters."""
    return shorten(" ".join(text.split()), limit)


def shown(value: Any) -> str:
    """A short repr of `value` (reprlib's: nested containers and long strings elided)."""
    return shorten(_REPR.repr(value))


def counted(n: int, noun: str) -> str:
    """`1 epoch`, `2 epochs`, `0 runs`: a count with its noun, singular only for one."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def human_duration(seconds: float) -> str:
    """`42 s`, `7 min`, `2.5 h`: as precise as an estimate deserves."""
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"
