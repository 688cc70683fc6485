"""A library's decoder process: its messages, its limits, and that it outlives refusals and Ctrl-C."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from autotag.audio.decode import chunk_frames, open_audio
from autotag.library import process
from tests.conftest import tone

RATE, CHUNK = 16000, 16000  # 1 s chunks at the model's rate


def _start(memory_mb: int = 2048) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "autotag.library.process", str(memory_mb), str(RATE), str(CHUNK)]
    return subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE)


def _messages(proc: subprocess.Popen, path: Path) -> list[tuple[bytes, bytes]]:
    """Send one path; the messages of that file, up to its end or refusal."""
    proc.stdin.write(json.dumps(str(path)).encode() + b"\n")
    proc.stdin.flush()
    got = []
    while not got or got[-1][0] not in (process.END, process.REFUSED):
        kind, size = process.HEADER.unpack(proc.stdout.read(process.HEADER.size))
        got.append((kind, proc.stdout.read(size)))
    return got


def test_a_file_comes_as_its_rate_then_each_chunk_s_mono_source_samples(tmp_path: Path) -> None:
    clip = tmp_path / "stereo.flac"
    sf.write(clip, tone(2.5, sr=44100, channels=2) * [1.0, 0.25], 44100)
    proc = _start()
    try:
        got = _messages(proc, clip)
    finally:
        proc.kill()
    with open_audio(clip, "clip", whole=False) as f:
        want = [(frames.mean(axis=1), full) for frames, full in chunk_frames(f, "clip", RATE, CHUNK)]
    assert got[0] == (process.RATE, b"44100") and got[-1] == (process.END, b"")
    assert [kind for kind, _ in got[1:-1]] == [process.CHUNK, process.CHUNK, process.LAST]
    for (_, payload), (mono, _) in zip(got[1:-1], want):
        np.testing.assert_array_equal(np.frombuffer(payload, "<f4"), mono)


def test_a_refusal_is_one_line_without_the_path_and_the_next_file_still_decodes(tmp_path: Path) -> None:
    junk, good = tmp_path / "junk.mp3", tmp_path / "good.wav"
    junk.write_bytes(b"not audio at all" * 100)
    sf.write(good, tone(1.0), RATE)
    proc = _start()
    try:
        refused = _messages(proc, junk)
        assert len(refused) == 1 and refused[0][0] == process.REFUSED
        reason = refused[0][1].decode()
        assert reason.startswith("not a readable audio file") and "junk" not in reason and "\n" not in reason
        assert [kind for kind, _ in _messages(proc, good)] == [process.RATE, process.CHUNK, process.END]
        assert _messages(proc, tmp_path / "gone.wav") == [(process.REFUSED, b"file not found")]
    finally:
        proc.kill()


def test_it_limits_its_address_space_and_ignores_ctrl_c(tmp_path: Path) -> None:
    sf.write(tmp_path / "a.wav", tone(1.0), RATE)
    proc = _start(memory_mb=1024)
    try:
        _messages(proc, tmp_path / "a.wav")  # started and limited by now
        limits = Path(f"/proc/{proc.pid}/limits").read_text()
        line = next(row for row in limits.splitlines() if row.startswith("Max address space"))
        assert line.split()[3:5] == [str(1024 << 20)] * 2
        core = next(row for row in limits.splitlines() if row.startswith("Max core file size"))
        assert core.split()[4:6] == ["0", "0"]
        proc.send_signal(signal.SIGINT)  # a Ctrl-C at a terminal reaches the whole process group
        assert [kind for kind, _ in _messages(proc, tmp_path / "a.wav")][-1] == process.END
        proc.stdin.close()  # its parent went away: it ends
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()


def test_the_down_mix_is_torch_s_mean_bit_for_bit() -> None:
    import torch

    frames = np.random.default_rng(0).standard_normal((100_000, 8)).astype(np.float32)
    for channels in (1, 2, 3, 8):
        want = torch.from_numpy(np.ascontiguousarray(frames[:, :channels])).mean(dim=1).numpy()
        np.testing.assert_array_equal(process.down_mix(frames[:, :channels]), want)
