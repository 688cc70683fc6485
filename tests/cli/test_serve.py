"""`python -m autotag serve`'s refusals: each one line, exit 2, before a model or a port is taken."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from autotag.cli.main import main
from autotag.cli.serve import TOKEN_BYTES, is_loopback


def _refusal(argv: list[str], capsys: pytest.CaptureFixture) -> str:
    assert main(["serve", "--run", "any-run", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_an_address_other_machines_reach_needs_a_token(capsys: pytest.CaptureFixture) -> None:
    for host in ("0.0.0.0", "192.168.1.20", "::", "example.org"):
        assert "give --token-file with a bearer token" in _refusal(["--host", host], capsys)
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.5.5.5", "::1", "localhost"))


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "it must hold one token on one line"),
        (b"one\ntwo\n", "it must hold one token on one line"),
        (b"with space", "it must hold one token on one line"),
        (b"\xff\xfe", "not UTF-8 text"),
        (b"x" * (TOKEN_BYTES + 1), "a token is one line"),
    ],
)
def test_a_token_file_that_holds_no_single_token_is_refused(
    tmp_path: Path, content: bytes, expected: str, capsys: pytest.CaptureFixture
) -> None:
    token = tmp_path / "token"
    token.write_bytes(content)
    assert expected in _refusal(["--token-file", str(token)], capsys)


def test_a_missing_token_file_a_taken_port_and_a_bad_port_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert "No such file or directory" in _refusal(["--token-file", str(tmp_path / "none")], capsys)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert f"cannot listen on 127.0.0.1:{port}" in _refusal(["--port", str(port)], capsys)
    for port in ("0", "70000", "http"):  # argparse's own refusal: usage, then the one line
        with pytest.raises(SystemExit) as exited:
            main(["serve", "--run", "any-run", "--port", port])
        assert exited.value.code == 2 and f"'{port}' is not a port (1-65535)" in capsys.readouterr().err
