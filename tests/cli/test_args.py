"""The shared argument types: bounds in the message, argparse's one line for no number."""

from __future__ import annotations

import argparse

import pytest

from autotag.cli.args import int_in


def test_int_in_takes_its_bounds_and_says_them() -> None:
    assert int_in(1)("7") == 7 and int_in(1, 64)("64") == 64
    with pytest.raises(argparse.ArgumentTypeError, match="must be at least 1, got 0"):
        int_in(1)("0")
    with pytest.raises(argparse.ArgumentTypeError, match="must be 1 to 64, got 65"):
        int_in(1, 64)("65")
    parser = argparse.ArgumentParser(prog="p", exit_on_error=False)
    parser.add_argument("--k", type=int_in(1, 10))
    with pytest.raises(argparse.ArgumentError, match="invalid int value: 'abc'"):
        parser.parse_args(["--k", "abc"])
