"""Issue 23, item 13: one set of audio limits for every way a file comes in.

The upload sandbox refused a 1024-channel WAV ("at most 8") that `autotag tag` on the
command line tagged (exit 0): the in-process decoder (`load_audio`, the streaming
`iter_chunks` that `tag` uses) applied no limit at all. Each file here must be refused
with the same one-line reason by all four: the CLI, `load_audio`, `iter_chunks` and the
upload sandbox. The length limit is one of a file held whole (an upload, a data set's
clip): a streamed read holds one chunk, and `autotag tag` reads a two-hour file.
"""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import pytest

from autotag.audio.decode import AudioError, iter_chunks, load_audio
from autotag.audio.sandbox import decode_untrusted


def _wav(rate: int, channels: int, frames: int, bits: int = 16) -> bytes:
    """A PCM WAV of silence: what its header says is what the file holds."""
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * block, block, bits)
    data = frames * block
    head = b"RIFF" + struct.pack("<I", 36 + data) + b"WAVEfmt " + struct.pack("<I", 16) + fmt
    return head + b"data" + struct.pack("<I", data) + bytes(data)


#: name -> (file bytes, the limit the refusal must name)
FILES = {
    "1024ch.wav": (lambda: _wav(16000, 1024, 100), "1024 channels; at most 8"),
    "1hz.wav": (lambda: _wav(1, 1, 10), "sample rate 1 Hz is outside"),
    "10mhz.wav": (lambda: _wav(10_000_000, 1, 1000), "sample rate 10000000 Hz is outside"),
}
#: 28.8 MB: 8-bit mono at 4 kHz, the cheapest real two hours.
TWO_HOURS = "2hours.wav"


@pytest.fixture(scope="module")
def hostile_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("hostile_audio")
    paths = {}
    for name, (make, _) in FILES.items():
        paths[name] = folder / name
        paths[name].write_bytes(make())
    paths[TWO_HOURS] = folder / TWO_HOURS
    paths[TWO_HOURS].write_bytes(_wav(4000, 1, 4000 * 7200, bits=8))
    return paths


def _problem(exc: AudioError, name: str | Path) -> str:
    message = str(exc)
    assert message.startswith(f"{name}: ") and "\n" not in message, message
    return message.removeprefix(f"{name}: ")


@pytest.mark.parametrize("name", sorted(FILES))
def test_every_in_process_and_sandboxed_decoder_refuses_it_alike(name: str, hostile_files: dict[str, Path]) -> None:
    path, limit = hostile_files[name], FILES[name][1]
    with pytest.raises(AudioError) as loaded:
        load_audio(path, 4000)  # the file's own rate where it has one: nothing to resample
    with pytest.raises(AudioError) as streamed:
        next(iter_chunks(path, 16000, 16000))
    with pytest.raises(AudioError) as sandboxed:
        decode_untrusted(path.read_bytes(), 16000, name=name)
    problems = {_problem(loaded.value, path), _problem(streamed.value, path), _problem(sandboxed.value, name)}
    assert len(problems) == 1 and limit in problems.pop(), problems


def test_a_two_hour_file_is_refused_whole_and_read_streamed(hostile_files: dict[str, Path]) -> None:
    path = hostile_files[TWO_HOURS]
    with pytest.raises(AudioError) as loaded:
        load_audio(path, 4000)
    with pytest.raises(AudioError) as sandboxed:
        decode_untrusted(path.read_bytes(), 16000, name=TWO_HOURS)
    limit = "longer than the limit of 1200 s"
    assert limit in _problem(loaded.value, path) and limit in _problem(sandboxed.value, TWO_HOURS)
    chunks = sum(1 for _ in iter_chunks(path, 4000, 4000 * 600))  # ten-minute chunks: memory of one
    assert chunks == 12


@pytest.mark.slow
def test_cli_tag_refuses_each_file_with_exit_2_and_one_line_each(
    trained_run: Path, hostile_files: dict[str, Path]
) -> None:
    files = [str(hostile_files[n]) for n in sorted(FILES)]
    done = subprocess.run(
        [sys.executable, "-m", "autotag", "tag", "--run", str(trained_run), *files],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    for name in sorted(FILES):
        mine = [line for line in lines if f"{hostile_files[name]}: " in line]
        assert len(mine) == 1 and FILES[name][1] in mine[0], done.stderr
