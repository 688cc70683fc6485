"""Progress where a user waits at a terminal: a bar with an ETA; nothing in a log or a pipe."""

from __future__ import annotations

import io
import os
import pty
import re
import select
import subprocess
import sys
from pathlib import Path

import pytest

from autotag.cli import progress
from autotag.cli.progress import terminal_bar


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_bar_redraws_one_line_with_an_eta_and_ends_it(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([100.0, 100.0, 103.0, 103.1, 106.0])
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    out = _Terminal()
    draw = terminal_bar("rendering clips", stream=out)
    draw(0, 10)
    draw(5, 10)  # 3 s for 5 clips: 3 s left
    draw(6, 10)  # 0.1 s after the last redraw: not drawn
    draw(10, 10)
    frames = out.getvalue().split("\r")[1:]
    assert len(frames) == 3 and frames[0].startswith("rendering clips [" + "." * 30 + "] 0/10")
    assert frames[1].startswith(f"rendering clips [{'#' * 15}{'.' * 15}] 5/10, 3 s left")
    assert frames[2].startswith(f"rendering clips [{'#' * 30}] 10/10") and frames[2].endswith("\n")


def test_nothing_is_drawn_into_a_file_or_a_pipe() -> None:
    assert terminal_bar("features", stream=io.StringIO()) is None


def _in_a_terminal(args: list[str], cwd: Path, timeout: float = 300) -> str:
    """What `python -m autotag ARGS` writes to a pseudo-terminal (stdout and stderr both)."""
    main, child = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "autotag", *args], stdin=child, stdout=child, stderr=child, cwd=cwd, close_fds=True
    )
    os.close(child)
    chunks = []
    try:
        while True:
            ready, _, _ = select.select([main], [], [], timeout)
            if not ready:
                raise TimeoutError(f"no output for {timeout} s from {args}")
            try:
                data = os.read(main, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(main)
        proc.wait(timeout=60)
    assert proc.returncode == 0, b"".join(chunks).decode(errors="replace")[-2000:]
    return b"".join(chunks).decode(errors="replace")


@pytest.mark.slow
def test_demo_data_and_fit_show_progress_in_a_terminal(tmp_path: Path) -> None:
    out = _in_a_terminal(["demo-data", str(tmp_path / "demo"), "--clips", "12", "--synthetic"], tmp_path)
    assert "\rrendering clips [" in out and "12/12" in out
    options = ["--model", "tiny", "--max-epochs", "1", "--chunk-seconds", "1", "--batch-size", "4"]
    out = _in_a_terminal(["fit", "--data", str(tmp_path / "demo"), *options], tmp_path)
    assert "\rfeatures [" in out and "12/12" in out  # the feature cache, clip by clip
    assert re.search(r"Epoch 0/0 .*? 10/10 ", out) and "it/s" in out  # Lightning's bar: the batches of an epoch


def test_a_bar_with_a_rate_shows_units_per_second(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([100.0, 100.5, 104.0])
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    out = _Terminal()
    draw = terminal_bar("tagging", stream=out, rate="files")
    draw(1, 10)  # 0.5 s in: too early for a rate or an ETA
    draw(8, 10)  # 8 files in 4 s: 2 a second, 1 s left
    frames = out.getvalue().split("\r")[1:]
    assert frames[0].rstrip() == f"tagging [{'#' * 3}{'.' * 27}] 1/10"
    assert frames[1].rstrip() == f"tagging [{'#' * 24}{'.' * 6}] 8/10, 2.0 files/s, 1 s left"
