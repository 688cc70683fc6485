"""The one base of every error that bad input causes, so each entry point handles them alike.

A user who types a wrong option, points at a damaged file or uploads something that is no
audio should get one line saying what is wrong, never a traceback: the CLI exits 2 with the
message and a page shows it. Each layer raises its own kind (ConfigError, RunError,
AudioError, ...) for its own callers; the entry points catch this base, so a new kind of
bad input needs no new entry in a list by hand.
"""

from __future__ import annotations


class AutotagError(ValueError):
    """Bad input a user can fix; the message says what and, where it can, how."""


class UsageError(AutotagError):
    """A command line that cannot be carried out as typed (a missing option, one out of place)."""
