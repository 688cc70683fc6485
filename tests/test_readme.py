"""README.md, executed: every command and Python snippet in it runs as written in a fresh clone.

The commands are read out of README.md's code blocks, not copied here, so the README cannot
drift from the behaviour. Each runs from the clone's root with no AUTOTAG_* variable (the
default relative `./runs`, `./data/demo`), in bash after `source .venv/bin/activate`.
Only what must change is substituted: 1 epoch instead of 20, a small extra demo set, real
file names for placeholders, and one machine instead of a cluster. A README command
that no rule here knows fails the test, and so does a rule whose command left the README.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import soundfile as sf

from tests.conftest import ROOT, paused, shipped_env, stop_trainers

pytestmark = pytest.mark.slow

README = ROOT / "README.md"

#: Commands not run here, and where the same behaviour is tested instead.
NOT_RUN = {
    "bash scripts/dashboard.sh": "started exactly so by tests/test_browser.py's shipped-defaults journey",
    "bash scripts/test.sh": "this test suite itself; .ci/run runs it",
    "docker build": "no Docker engine on these machines; tests/test_packaging.py reads the Dockerfile",
    "docker run": "no Docker engine on these machines; tests/test_packaging.py reads the Dockerfile",
    "DATA=/shared/mtat sbatch": "no SLURM cluster here; tests/training/test_slurm.py runs an exported script",
    "python -m autotag sweep export-slurm --data /shared": "no cluster or PostgreSQL host here; "
    "tests/sweeps/test_sweep.py exports and runs an array against a PostgreSQL server it starts",
    "sbatch sweep.sbatch": "no SLURM cluster here; tests/sweeps/test_sweep.py runs the array's tasks",
}


def readme_blocks(lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", README.read_text(encoding="utf-8"), flags=re.S | re.M)


def bash_commands() -> list[str]:
    """Each command of README's bash blocks: continuation lines joined, comments dropped."""
    commands = []
    for block in readme_blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"(^|\s)#.*$", "", line).strip()
            if line:
                commands.append(re.sub(r"\s+", " ", line))
    return commands


@dataclass
class Journey:
    """What the README's commands made so far, for the commands that come after them."""

    clone: Path
    weights: Path | None  # the folder of published weights (a mirror); None: not on this machine
    run: str = ""  # the run `fit` made, by name (README's `runs/<run>` and `RUN`)
    published: str = ""  # the run `pretrained get` made, by folder (README's `<published>`)
    not_run: dict[str, str] = field(default_factory=dict)  # README commands not run here, and why
    background: str = ""  # a run training in the background, for stop / resume / delete
    sweep: str = ""  # the sweep `sweep` made, by folder (README's `<sweep>`)
    covered: list[str] = field(default_factory=list)  # README commands run, as README has them
    server: subprocess.Popen | None = None  # README's `serve ... &`, until its `kill %1`
    port: int = 0  # the free port it listens on instead of README's 8000

    def sh(self, command: str, timeout: float = 300, ok: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run(
            ["bash", "-c", f"set -e; source .venv/bin/activate; {command}"],
            cwd=self.clone,
            env=shipped_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if ok:
            assert done.returncode == 0, f"{command}\nexit {done.returncode}\n{done.stderr[-3000:]}"
        return done

    def status(self, name: str) -> dict:
        return json.loads((self.clone / "runs" / name / "status.json").read_text())

    def wait(self, name: str, done: Callable[[Path], bool], timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while not done(self.clone / "runs" / name):
            assert time.monotonic() < deadline, f"{name}: timed out, status {self.status(name)}"
            time.sleep(0.2)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _substitute(command: str, j: Journey) -> str:
    """The README command with only its placeholders and its size made concrete."""
    out = command.replace("runs/<run>", f"runs/{j.run}").replace("<run>", j.run).replace("<sweep>", j.sweep)
    out = out.replace("--max-epochs 20", "--max-epochs 1").replace("--clips 300", "--clips 20")
    out = out.replace("--max-epochs 5 --init-from", "--max-epochs 3 --init-from")  # 2 frozen, 1 not: both ways
    out = out.replace("--trials 12", "--trials 3").replace("--max-minutes 20", "--max-minutes 0.05")
    if out.startswith("python -m autotag pretrained get"):  # a mirror of the files instead of a download
        out = f"AUTOTAG_PRETRAINED_DIR={j.weights} {out}"
    if "<published>" in out:  # a published network trains ~40x slower than tiny: the 20-clip set
        out = out.replace("<published>", j.published).replace("--data data/demo ", "--data data/demo2 ")
    if " runs " in f" {out} " and re.search(r"\bRUN\b", out):
        which = j.background if re.search(r"runs (stop|resume|delete) RUN", out) else j.run
        out = re.sub(r"\bRUN\b", which, out)
    if "--strategy ddp" in out and "torchrun" not in out:
        out += " --max-epochs 1"  # the README's DDP line trains the default 100 epochs
    if out.startswith("torchrun"):  # one machine with two CPU processes instead of 2 x 4 GPUs
        out = (
            out.replace("--nnodes 2", "--nnodes 1")
            .replace("--nproc-per-node 4", "--nproc-per-node 2")
            .replace("HOST:29500", f"127.0.0.1:{_free_port()}")
            .replace("--num-nodes 2", "--num-nodes 1")
            .replace("--devices 4", "--devices 2")
            .replace("--accelerator gpu", "--accelerator cpu")
            .replace("/shared/runs/mtat-ddp", "runs/mtat-ddp")  # relative: it must work as well
        )
    return out


def _start_background_run(j: Journey) -> str:
    """A long run launched as the dashboard launches one (a plain Python call, default folders)."""
    code = (
        "from autotag.runs import manager; from autotag.config import make_config; "
        "print(manager.launch(make_config(data='data/demo', model='tiny', max_epochs=200, patience=100)).name)"
    )
    name = j.sh(f'python -c "{code}"').stdout.strip()
    j.wait(name, lambda run: (run / "checkpoints" / "last.ckpt").is_file())
    assert j.status(name)["state"] == "running"
    return name


def _serve(j: Journey, command: str) -> None:
    """README's `serve ... &` in the background, on a free port; waits for /health."""
    j.port = _free_port()
    line = command.removesuffix("&").strip().replace("--port 8000", f"--port {j.port}")
    j.server = subprocess.Popen(
        ["bash", "-c", f"source .venv/bin/activate; exec {line}"], cwd=j.clone, env=shipped_env()
    )
    deadline = time.monotonic() + 120
    while True:
        assert j.server.poll() is None, f"{line}: exit {j.server.returncode}"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{j.port}/health", timeout=1):
                return
        except OSError:
            assert time.monotonic() < deadline, f"{line}: no answer on /health within 120 s"
            time.sleep(0.2)


def _stop_server(j: Journey) -> None:
    if j.server is not None:
        j.server.terminate()
        j.server.wait(20)
        j.server = None


def _run_commands(j: Journey, commands: list[str]) -> None:
    for command in commands:
        if command == "source .venv/bin/activate" or any(command.startswith(k) for k in NOT_RUN):
            continue
        if command.startswith("python -m autotag serve "):
            _serve(j, _substitute(command, j))
            j.covered.append(command)
            continue
        if command == "kill %1":  # the README's `serve ... &`
            assert j.server is not None and j.server.poll() is None, "the server ended before README stops it"
            _stop_server(j)
            j.covered.append(command)
            continue
        if command.startswith("curl "):
            command_run = command.replace("127.0.0.1:8000", f"127.0.0.1:{j.port}")
            answer = json.loads(j.sh(command_run, timeout=120).stdout)
            assert "tags" in answer if "/v1/tag" in command else "labels" in answer, answer
            j.covered.append(command)
            continue
        if re.search(r"runs (stop|resume|delete) ", command) and not j.background:
            j.background = _start_background_run(j)
        if j.weights is None and ("pretrained get" in command or "<published>" in command):
            j.not_run[command] = "the published weights are not on this machine (AUTOTAG_PRETRAINED_DIR)"
            if "pretrained get" in command:  # as offline: exit 2 at once, naming the download and --from
                done = j.sh(command, timeout=60, ok=False)
                assert done.returncode == 2 and "--from" in done.stderr, done.stderr[-3000:]
            continue
        concrete = _substitute(command, j)
        if " runs delete " in f" {command} ":
            j.sh(f"python -m autotag runs stop {j.background}")  # README: "stop it first"
        started = time.monotonic()
        done = j.sh(concrete, timeout=600)
        print(f"README {time.monotonic() - started:5.1f} s  {concrete[:100]}")  # where the journey's time goes (-s)
        j.covered.append(command)
        if re.search(r"autotag fit --data data/demo --model tiny --max-epochs", command):
            run_dir = Path(done.stdout.strip().splitlines()[-1])
            assert run_dir.parent == j.clone / "runs", run_dir  # the default ./runs of the clone
            j.run = run_dir.name
        if command.startswith("python -m autotag pretrained get"):
            j.published = done.stdout.strip().splitlines()[-1]
            assert Path(j.published).parent == j.clone / "runs", j.published
        if "--max-minutes" in command:
            run_dir = Path(done.stdout.strip().splitlines()[-1])
            ended_by = json.loads((run_dir / "metrics.json").read_text())["ended_by"]
            assert ended_by == "time budget of 0.05 min spent", ended_by
        if command.startswith("python -m autotag tag --run <published>"):
            assert len(json.loads(done.stdout)["song.wav"]) == 50, done.stdout  # MagnaTagATune's tags
        if command.startswith("python -m autotag sweep --data"):
            sweep = Path(done.stdout.strip().splitlines()[-1])
            assert sweep.parent == j.clone / "runs" / "sweeps", sweep
            j.sweep = sweep.name
        if " sweep show " in f" {command} ":
            assert done.stdout.count(" complete ") + done.stdout.count(" pruned ") == 3, done.stdout
        if " runs stop " in f" {command} ":
            assert done.stdout.strip() == f"{j.background}: stopped"
        if " runs resume " in f" {command} ":
            j.wait(j.background, lambda run: j.status(run.name)["state"] == "running")


@pytest.fixture
def journey(shipped_clone: Path, published_or_none: Path | None) -> Iterator[Journey]:
    """The README journey in the shipped clone; ends any trainer it left running, even on failure."""
    j = Journey(shipped_clone, published_or_none)
    try:
        yield j
    finally:
        _stop_server(j)
        stop_trainers(shipped_clone / "runs")


@pytest.mark.timeout(1200)  # the whole README, one command after another: ~6 min in CI, twice that on a busy machine
def test_readme_commands_and_snippets_run_as_written(shipped_clone: Path, journey: Journey) -> None:
    j = journey
    demo = shipped_clone / "data" / "demo" / "audio"
    for clip, target in (("clip_0001.wav", "song.mp3"), ("clip_0002.wav", "other.wav"), ("clip_0003.wav", "song.wav")):
        wave, rate = sf.read(demo / clip)
        sf.write(shipped_clone / target, wave[: int(rate * 7.3)], rate)  # not a whole number of chunks

    commands = bash_commands()
    assert len(commands) >= 15, commands
    # In the order a user needs them: first a run, then what uses it, the cluster last.
    first = [c for c in commands if " runs " not in f" {c} " and "torchrun" not in c and "prepare" not in c]
    runs_block = [c for c in commands if c.startswith("python -m autotag runs ")]
    cluster = [c for c in commands if c not in first and c not in runs_block]
    _run_commands(j, [c for c in first if "--strategy ddp" not in c])
    assert j.run, "README's fit command did not run"

    python_blocks = readme_blocks("python")
    assert len(python_blocks) == 2, python_blocks
    api, onnx = python_blocks
    api = api.replace("max_epochs=20", "max_epochs=1")
    out = j.sh(f"python - <<'EOF'\n{api}\nprint(pred.top(5), pred.taggram.shape, metrics['roc_auc_macro'])\nEOF")
    assert re.search(r"\[\('\w+', 0\.\d+\)", out.stdout), out.stdout

    j.sh(f"python -m autotag export runs/{j.run} --format onnx --check song.wav")  # the comment's "or --format onnx"
    export = f"runs/{j.run}/export/"
    onnx = onnx.replace('"model.onnx', f'"{export}model.onnx')
    printed = j.sh(f"python - <<'EOF'\n{onnx}\nEOF").stdout
    assert "np.float32" not in printed and re.match(r"\[\(0\.\d+, '\w+'\)", printed), printed
    tagged = json.loads(j.sh(f"python -m autotag tag --run runs/{j.run} song.wav").stdout)["song.wav"]
    shown = dict((tag, prob) for prob, tag in eval(printed))  # noqa: S307 - our own snippet's printed list
    for tag, prob in shown.items():
        assert abs(tagged[tag] - prob) < 1e-3, (tag, tagged[tag], prob)  # the snippet tags like `autotag tag`

    _run_commands(j, [c for c in first if "--strategy ddp" in c] + runs_block + cluster)
    assert not (shipped_clone / "runs" / j.background).exists()  # `runs delete` deleted it
    assert (shipped_clone / "job.sbatch").is_file()
    assert json.loads((shipped_clone / "runs" / "mtat-ddp" / "status.json").read_text())["state"] == "completed"

    skipped = [c for c in commands if c == "source .venv/bin/activate" or any(c.startswith(k) for k in NOT_RUN)]
    skipped += list(j.not_run)
    assert sorted(j.covered + skipped) == sorted(commands), "README commands run twice or not at all"
    assert all(any(c.startswith(k) for c in commands) for k in NOT_RUN), "a NOT_RUN entry is no longer in README"


@pytest.fixture
def elsewhere(tmp_path: Path) -> Iterator[Path]:
    """A folder outside the clone to type commands in; ends any trainer left running there."""
    here = tmp_path / "elsewhere"
    here.mkdir()
    try:
        yield here
    finally:
        stop_trainers(here / "runs")


def test_readme_journey_from_another_folder(shipped_clone: Path, elsewhere: Path) -> None:
    """Relative paths typed in another folder: the run's background trainer (run from the
    project root) must still find the data, and the advice a stopped fit prints must work."""
    here = elsewhere
    data = Path("..") / Path(*[".."] * (len(here.parts) - 1)) / str(shipped_clone / "data" / "demo").lstrip("/")
    python = str(ROOT / ".venv" / "bin" / "python")
    env = shipped_env()

    def cli(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [python, "-m", "autotag", *args], cwd=here, env=env, capture_output=True, text=True, timeout=300
        )
        assert not ok or done.returncode == 0, f"{args}: {done.stderr[-3000:]}"
        return done

    def stopped_fit(when: Callable[[Path], bool]) -> tuple[Path, str]:
        """`fit` in the foreground, interrupted (Ctrl-C) once `when(run folder)` holds."""
        proc = subprocess.Popen(
            [python, "-m", "autotag", "fit", "--data", str(data), "--model", "tiny", "--max-epochs", "3"],
            cwd=here,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            # As in a terminal: a suite started in the background of a non-interactive shell
            # inherits an ignored SIGINT, and Python then installs no Ctrl-C handler at all.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        try:
            deadline = time.monotonic() + 120
            while not ((here / "runs").is_dir() and any(when(r) for r in (here / "runs").iterdir())):
                assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-3000:]
                time.sleep(0.05)
            with paused(proc.pid):  # the Ctrl-C lands before the next epoch's end, however fast the machine
                proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=120)
        finally:
            proc.kill()  # a no-op once it has ended
        assert proc.returncode == 130, err[-3000:]  # 128 + SIGINT, as a shell reports an interrupted command
        run = next(r for r in (here / "runs").iterdir() if when(r))
        return run, err.strip().splitlines()[-1]

    # Stopped after a checkpoint: the advice resumes it, from here, and it completes.
    run, advice = stopped_fit(lambda r: (r / "checkpoints" / "last.ckpt").is_file())
    assert advice == f"stopped; continue with: python -m autotag runs resume {run}", advice
    config = (run / "config.yaml").read_text()
    assert f"data: {shipped_clone / 'data' / 'demo'}\n" in config  # stored absolute
    cli(*advice.split("python -m autotag ")[1].split())
    deadline = time.monotonic() + 180
    while (state := json.loads((run / "status.json").read_text())["state"]) in ("queued", "starting", "running"):
        assert time.monotonic() < deadline, state
        time.sleep(0.2)
    assert state == "completed", cli("runs", "show", run.name).stdout

    # --runs-dir before or after the subcommand, names and paths alike.
    for args in (
        ("runs", "list"),
        ("runs", "list", "--runs-dir", "runs"),
        ("runs", "--runs-dir", "runs", "list"),
        ("runs", "show", "--runs-dir", "runs", run.name),
        ("runs", "show", str(run)),
        ("runs", "show", f"runs/{run.name}"),
    ):
        assert run.name in cli(*args).stdout, args
    elsewhere = cli("runs", "list", "--runs-dir", str(shipped_clone / "runs")).stdout
    assert run.name not in elsewhere
    tagged = cli("tag", "--run", run.name, "--runs-dir", "runs", str(data / "audio" / "clip_0004.wav")).stdout
    assert set(json.loads(tagged)[str(data / "audio" / "clip_0004.wav")]) == set(
        json.loads((run / "labels.json").read_text())
    )

    # Stopped before its first checkpoint: nothing to resume, and the advice says how to start again.
    def training(r: Path) -> bool:  # past the imports (a Ctrl-C there is Python's, not ours)
        return r != run and json.loads((r / "status.json").read_text() or "{}").get("phase") == "training"

    early, advice = stopped_fit(lambda r: (r / "status.json").is_file() and training(r))
    assert not (early / "checkpoints" / "last.ckpt").exists()
    expected = f"python -m autotag fit --config {early / 'config.yaml'}"
    assert advice.endswith(expected) and "nothing to resume" in advice, advice
    again = cli(*expected.split("python -m autotag ")[1].split())
    assert Path(again.stdout.strip().splitlines()[-1]).parent == here / "runs"
