"""`autotag tag --out`: a folder tagged into a library, a row per file, the numbers of `tag`,
failures recorded, resumable after a kill, bad arguments refused before anything is written."""

from __future__ import annotations

import base64
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from autotag.cli.main import main
from autotag.library.store import open_library
from autotag.library.tag import CPU_BATCH, library_meta, tag_library
from autotag.serving.tagger import Tagger
from tests.cli.test_progress import _in_a_terminal
from tests.conftest import paused, tone

pytestmark = pytest.mark.slow


def _cli(*args: str, **kwargs: object) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "autotag", *args], capture_output=True, text=True, timeout=300, **kwargs
    )


def _rows(out: Path) -> pd.DataFrame:
    with closing(sqlite3.connect(out)) as db:  # closed: an open reader keeps the writer from folding its WAL in
        return pd.read_sql_query("SELECT * FROM files ORDER BY path", db)


@pytest.fixture(scope="module")
def music(demo_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Seven short clips in four formats and three folders, stereo and 44.1 kHz among them;
    a text file and a hidden file that are not the library's."""
    root = tmp_path_factory.mktemp("music") / "music"
    clips = sorted((demo_dataset / "audio").glob("*.wav"))
    for i, (name, rate, channels) in enumerate(
        (
            ("a/one.wav", 16000, 1),
            ("a/two.flac", 44100, 2),
            ("b/three.ogg", 16000, 1),
            ("b/c/four.mp3", 22050, 1),
            ("b/c/five.wav", 48000, 2),
            ("six.FLAC", 16000, 1),
            ("seven.wav", 16000, 1),
        )
    ):
        wave, sr = sf.read(clips[i], dtype="float32")
        wave = wave[: int(sr * (3.5 + i))]  # not a whole number of 3 s chunks
        if rate != sr:
            t = np.arange(int(len(wave) * rate / sr)) * sr / rate
            wave = np.interp(t, np.arange(len(wave)), wave).astype(np.float32)
        if channels == 2:
            wave = np.stack([wave, 0.5 * wave], axis=1)
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        sf.write(root / name, wave, rate)
    (root / "a" / "notes.txt").write_text("not audio")
    sf.write(root / ".hidden.wav", tone(1.0), 16000)
    return root


def _audio(root: Path) -> list[Path]:
    return sorted(
        p for p in root.rglob("*") if p.suffix.lower() in (".wav", ".flac", ".ogg", ".mp3") and "/." not in str(p)
    )


def test_a_folder_becomes_a_row_per_file_with_the_numbers_of_tag(
    trained_run: Path, music: Path, tmp_path: Path
) -> None:
    out = tmp_path / "lib.sqlite"
    done = _cli("tag", "--run", str(trained_run), str(music), "--recursive", "--out", str(out), "--workers", "2")
    assert done.returncode == 0, done.stderr
    files = _audio(music)
    assert done.stdout.strip() == str(out)
    assert done.stderr.strip().splitlines()[-1] == "autotag: tagged 7, skipped 0 (already in lib.sqlite), failed 0"
    rows = _rows(out)
    assert rows.path.tolist() == sorted(map(str, files)) and set(rows.status) == {"tagged"}

    # The numbers of `tag` without --out, up to float32 rounding (4 chunks a forward pass, not one).
    plain = json.loads(_cli("tag", "--run", str(trained_run), *map(str, files)).stdout)
    with closing(sqlite3.connect(out)) as db:
        probs = db.execute("SELECT path, tag, probability FROM probabilities JOIN files ON id = file_id").fetchall()
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        vectors = dict(db.execute("SELECT path, vector FROM embeddings JOIN files ON id = file_id").fetchall())
    labels = json.loads((trained_run / "labels.json").read_text())
    assert len(probs) == 7 * len(labels)
    for path, tag, p in probs:
        assert abs(p - plain[path][tag]) <= 1e-6, (path, tag)  # `tag` prints 6 decimals

    # And those of the Tagger scoring as a library does, exactly: probabilities, and the
    # embedding as float16 of the network's width.
    tagger = Tagger.load(trained_run, device="cpu")
    width = tagger.module.net.head[-1].in_features
    assert meta["embedding_width"] == str(width) and meta["run"] == str(trained_run)
    assert meta["checkpoint"] == tagger.checkpoint.name
    for path in files[:3]:
        pred = tagger.predict(path, batch_size=CPU_BATCH, embed=True)
        stored = {tag: p for f, tag, p in probs if f == str(path)}
        assert stored == pred.clip
        vector = np.frombuffer(vectors[str(path)], "<f2")
        assert vector.shape == (width,)
        np.testing.assert_array_equal(vector, pred.embedding.astype(np.float16))
    assert rows.duration.tolist() == pytest.approx([tagger.predict(Path(p)).duration for p in rows.path], abs=1e-3)

    # CSV and JSON lines: the same rows; JSON lines with the embeddings.
    for suffix in (".csv", ".jsonl"):
        done = _cli("tag", "--run", str(trained_run), str(music), "-r", "--out", str(tmp_path / f"lib{suffix}"), "-q")
        assert done.returncode == 0 and done.stdout == "" and done.stderr == "", done.stderr
    table = pd.read_csv(tmp_path / "lib.csv").set_index("path")
    lines = [json.loads(line) for line in (tmp_path / "lib.jsonl").read_text().splitlines()]
    assert sorted(table.index) == sorted(line["path"] for line in lines) == rows.path.tolist()
    for line in lines:
        want = [plain[line["path"]][tag] for tag in labels]  # both rounded to 6 decimals: 1e-6 apart at most
        assert [line["probabilities"][tag] for tag in labels] == pytest.approx(want, abs=2e-6)
        assert [table.loc[line["path"], tag] for tag in labels] == pytest.approx(want, abs=2e-6)
        assert (
            line["tags"]
            == table.loc[line["path"], "tags"].split(";")
            == rows.set_index("path").tags[line["path"]].split(";")
        )
        np.testing.assert_array_equal(
            np.frombuffer(base64.b64decode(line["embedding"]), "<f2"), np.frombuffer(vectors[line["path"]], "<f2")
        )


def test_a_file_that_does_not_decode_gets_a_failed_row_and_exit_3(
    trained_run: Path, music: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "good.wav").write_bytes((music / "seven.wav").read_bytes())
    (folder / "broken.mp3").write_bytes(b"\xff\xfb" + os.urandom(3000))
    (folder / "empty.flac").write_bytes(b"")
    out = tmp_path / "lib.csv"
    done = _cli("tag", "--run", str(trained_run), str(folder), "--recursive", "--out", str(out))
    assert done.returncode == 3, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-1] == "autotag: tagged 1, skipped 0 (already in lib.csv), failed 2"
    assert any(line.startswith(f"autotag: failed: {folder / 'empty.flac'}: ") for line in lines)
    rows = pd.read_csv(out).set_index("path")
    assert rows.status.to_dict() == {
        str(folder / n): s for n, s in (("broken.mp3", "failed"), ("empty.flac", "failed"), ("good.wav", "tagged"))
    }
    assert rows.error[str(folder / "empty.flac")].startswith("not a readable audio file")
    assert "exit status" in _cli("tag", "--help").stdout.lower() and "3 when some files" in _cli("tag", "--help").stdout


def _start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "autotag", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # As at a terminal: a suite started in the background inherits an ignored SIGINT.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _tagged_rows(out: Path) -> int:
    try:
        with closing(sqlite3.connect(f"file:{out}?mode=ro", uri=True)) as db:
            return db.execute("SELECT count(*) FROM files").fetchone()[0]
    except sqlite3.Error:  # not made yet, or its tables not yet
        return 0


def _many(demo_dataset: Path, folder: Path) -> list[str]:
    """40 clips in `folder`; the arguments that tag them with one decoder (the slowest way)."""
    folder.mkdir()
    for clip in sorted((demo_dataset / "audio").glob("*.wav"))[:40]:
        (folder / clip.name).write_bytes(clip.read_bytes())
    return [str(folder), "--recursive", "--out", str(folder.parent / "lib.sqlite"), "--workers", "1"]


def _stopped(args: list[str], out: Path, how: signal.Signals) -> tuple[int, str]:
    """Start `autotag ARGS`; once 3 files have rows, send `how`; its exit status and stderr."""
    proc = _start(args)
    try:
        deadline = time.monotonic() + 120
        while _tagged_rows(out) < 3:
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.01)
        with paused(proc.pid):  # the signal lands before the last file, however fast the machine
            assert proc.poll() is None and _tagged_rows(out) < 40, "tag ended before the test could stop it"
            proc.send_signal(how)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    rows = _rows(out)
    assert 3 <= len(rows) < 40 and set(rows.status) == {"tagged"}, "stopped halfway, every row whole"
    return proc.returncode, err


def test_a_library_killed_halfway_resumes_without_tagging_a_file_twice(
    trained_run: Path, demo_dataset: Path, tmp_path: Path
) -> None:
    args = ["tag", "--run", str(trained_run), *_many(demo_dataset, tmp_path / "many")]
    out = tmp_path / "lib.sqlite"
    assert _stopped(args, out, signal.SIGKILL)[0] == -signal.SIGKILL
    first = _rows(out)

    again = _cli(*args, "--resume")
    assert again.returncode == 0, again.stderr
    summary = again.stderr.strip().splitlines()[-1]
    assert summary == f"autotag: tagged {40 - len(first)}, skipped {len(first)} (already in lib.sqlite), failed 0"
    rows = _rows(out)
    assert len(rows) == 40 and rows.path.is_unique
    kept = rows.set_index("path").id
    assert all(kept[p] == i for p, i in zip(first.path, first.id))  # rows of the first run untouched: not tagged again

    # A file that changed is tagged again (its row replaced); the others are not.
    changed = tmp_path / "many" / sorted(os.listdir(tmp_path / "many"))[0]
    wave, rate = sf.read(changed)
    sf.write(changed, wave[: len(wave) // 2], rate)
    third = _cli(*args, "--resume")
    assert third.stderr.strip().splitlines()[-1] == "autotag: tagged 1, skipped 39 (already in lib.sqlite), failed 0"
    after = _rows(out).set_index("path")
    assert after.duration[str(changed)] == pytest.approx(len(wave) // 2 / rate, abs=1e-3)
    assert after.drop(index=str(changed)).id.equals(kept.drop(index=str(changed)))


def test_ctrl_c_keeps_the_rows_done_and_says_how_to_go_on(
    trained_run: Path, demo_dataset: Path, tmp_path: Path
) -> None:
    args = ["tag", "--run", str(trained_run), *_many(demo_dataset, tmp_path / "many")]
    out = tmp_path / "lib.sqlite"
    code, err = _stopped(args, out, signal.SIGINT)
    assert code == 130 and err.strip().splitlines()[-1] == (
        f"autotag: interrupted; the files done are in {out}: add --resume to go on"
    ), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lib.sqlite", "many"]  # closed: no WAL left


def test_bad_arguments_exit_2_with_one_line_and_write_nothing(
    trained_run: Path, music: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    os.mkfifo(tmp_path / "pipe.wav")
    (tmp_path / "taken.sqlite").write_bytes(b"")
    run = ["tag", "--run", str(trained_run)]
    cases = {
        "gone: no such file or folder": [*run, "gone", "-r", "--out", "lib.sqlite"],
        "--formats 'wav,aac': choose from": [*run, str(music), "-r", "--formats", "wav,aac", "--out", "lib.sqlite"],
        "--out 'lib.txt': the suffix chooses the format": [*run, str(music), "-r", "--out", "lib.txt"],
        "is a folder: add --recursive": [*run, str(music), "--out", "lib.sqlite"],
        "pipe.wav is neither a file nor a folder": [*run, "pipe.wav", "-r", "--out", "lib.sqlite"],
        "taken.sqlite exists: add --resume": [*run, str(music), "-r", "--out", "taken.sqlite"],
        "there is no folder": [*run, str(music), "-r", "--out", "nowhere/lib.sqlite"],
        "--recursive, --resume: only with --out": [*run, str(music / "seven.wav"), "-r", "--resume"],
        "--quiet: only with --out": [*run, str(music / "seven.wav"), "--quiet"],
        "with --out, its suffix chooses the format": [*run, str(music), "-r", "--out", "lib.csv", "--format", "csv"],
        "no run": ["tag", "--run", "no-such-run", str(music), "-r", "--out", "lib.sqlite"],
    }
    for message, args in cases.items():
        assert main(args) == 2, args
        err = capsys.readouterr().err
        assert err.startswith("autotag: error: ") and err.count("\n") == 1, err
        assert message in err or (message == "no run" and "no-such-run" in err), err
    with pytest.raises(SystemExit) as exit_:
        main([*run, str(music), "-r", "--out", "lib.sqlite", "--workers", "0"])
    assert exit_.value.code == 2
    assert (
        sorted(os.listdir(tmp_path)) == ["pipe.wav", "taken.sqlite"] and (tmp_path / "taken.sqlite").read_bytes() == b""
    )


def test_silence_gets_no_tags_and_no_embedding_and_progress_counts_files(trained_run: Path, tmp_path: Path) -> None:
    folder = tmp_path / "quiet"
    folder.mkdir()
    sf.write(folder / "silence.wav", np.zeros(16000 * 4, np.float32), 16000)
    sf.write(folder / "tone.wav", tone(4.0), 16000)
    tagger = Tagger.load(trained_run, device="cpu")
    thresholds = dict.fromkeys(tagger.labels, 0.0)  # every tag passes, but silence has none
    calls: list[tuple[int, int]] = []
    with open_library(tmp_path / "lib.sqlite", library_meta(tagger, trained_run, thresholds), resume=False) as lib:
        summary = tag_library(
            tagger, lib, [folder], thresholds, workers=1, progress=lambda *a: calls.append(a), total=2
        )
    assert (summary.tagged, summary.skipped, summary.failed) == (2, 0, 0) and calls == [(1, 2), (2, 2)]
    with closing(sqlite3.connect(tmp_path / "lib.sqlite")) as db:
        rows = dict(db.execute("SELECT path, silent FROM files").fetchall())
        with_vectors = [p for (p,) in db.execute("SELECT path FROM embeddings JOIN files ON id = file_id")]
        decided = {p for (p,) in db.execute("SELECT DISTINCT path FROM file_tags")}
    assert rows == {str(folder / "silence.wav"): 1, str(folder / "tone.wav"): 0}
    assert with_vectors == [str(folder / "tone.wav")] and decided == {str(folder / "tone.wav")}


def test_a_terminal_shows_the_bar_and_quiet_shows_nothing(trained_run: Path, music: Path, tmp_path: Path) -> None:
    args = ["tag", "--run", str(trained_run), str(music), "-r", "--out"]
    out = _in_a_terminal([*args, str(tmp_path / "a.sqlite")], tmp_path)
    assert "\rtagging [" in out and "7/7" in out and "tagged 7, skipped 0" in out
    assert _in_a_terminal([*args, str(tmp_path / "b.sqlite"), "--quiet"], tmp_path) == ""
