"""`autotag serve` as a client meets it: a real uvicorn server on loopback, answered over HTTP.

The same numbers as `autotag tag`; every hostile upload a 4xx with a one-line JSON message,
and the server lives on; a token when one is set; 20 clients at once without a failure.
"""

from __future__ import annotations

import io
import json
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf

from tests.audio.test_hostile_uploads import REFUSED
from tests.conftest import tone
from tests.hostile.test_audio_files import FILES

pytestmark = pytest.mark.slow  # each module's server loads a model (seconds)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`python -m autotag serve` in its own process, stopped by its PID."""

    def __init__(self, run: Path, *extra: str) -> None:
        self.url = f"http://127.0.0.1:{_free_port()}"
        port = self.url.rsplit(":", 1)[1]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "autotag", "serve", "--run", str(run), "--port", port, *extra],
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.proc.stderr.read() if self.proc.stderr else ""
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        self.stop()
        raise AssertionError("the server did not answer /health within 120 s")

    def stop(self) -> str:
        self.proc.terminate()
        try:
            _, err = self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return err


@pytest.fixture(scope="module")
def server(trained_run: Path) -> Iterator[Server]:
    running = Server(trained_run)
    yield running
    log = running.stop()
    assert "Traceback" not in log, log[-3000:]  # no hostile upload reached an unhandled error


def _wav(seconds: float = 3.0, freq: float = 440.0) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, tone(seconds, freq), 16000, format="WAV")
    return buf.getvalue()


def _tag(server: Server, data: bytes, name: str = "clip.wav", **form: str) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/tag", files={"file": (name, data)}, data=form, timeout=60)


def test_a_clip_gets_the_same_numbers_as_autotag_tag(server: Server, trained_run: Path, tmp_path: Path) -> None:
    clip = tmp_path / "piano.wav"
    clip.write_bytes(_wav(12.0))
    answer = _tag(server, clip.read_bytes(), "piano.wav", top_k="3")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    cli = subprocess.run(
        [sys.executable, "-m", "autotag", "tag", "--run", str(trained_run), str(clip)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert body["probabilities"] == json.loads(cli.stdout)[str(clip)]
    assert [t["tag"] for t in body["top"]] == sorted(body["probabilities"], key=lambda t: -body["probabilities"][t])[:3]
    decided = subprocess.run(
        [sys.executable, "-m", "autotag", "tag", "--run", str(trained_run), str(clip), "--format", "tags"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert body["tags"] == json.loads(decided.stdout)[str(clip)] and body["duration"] == pytest.approx(12.0)
    one_cut = _tag(server, clip.read_bytes(), threshold="0.0", taggram="true").json()
    assert one_cut["tags"] and set(one_cut["thresholds"].values()) == {0.0}
    assert len(one_cut["taggram"]["scores"][0]) == len(one_cut["taggram"]["labels"])


def test_the_model_says_what_it_tags_and_takes(server: Server, trained_run: Path) -> None:
    model = httpx.get(f"{server.url}/v1/model").json()
    assert model["labels"] == json.loads((trained_run / "labels.json").read_text())
    assert model["run"] == trained_run.name and model["thresholds_tuned"] is True
    assert model["input"]["max_upload_mb"] == 100 and model["input"]["max_channels"] == 8
    assert httpx.get(f"{server.url}/docs").status_code == 200
    assert "/v1/tag" in httpx.get(f"{server.url}/openapi.json").json()["paths"]


HOSTILE = {
    **{case: (make, expected) for case, (make, expected) in REFUSED.items()},
    **{name: (make, expected) for name, (make, expected) in FILES.items()},
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_upload_is_a_422_with_one_line_and_the_server_lives_on(server: Server, case: str) -> None:
    make, expected = HOSTILE[case]
    answer = _tag(server, make(), "upload.wav")
    assert answer.status_code == 422, answer.text
    message = answer.json()["error"]
    assert expected in message and "\n" not in message and "Traceback" not in message
    assert _tag(server, _wav(1.0)).status_code == 200


@pytest.mark.parametrize(
    ("form", "expected"),
    [
        ({"top_k": "0"}, "top_k: Input should be greater than or equal to 1"),
        ({"top_k": "many"}, "top_k: Input should be a valid integer"),
        ({"threshold": "1.5"}, "threshold: Input should be less than or equal to 1"),
        ({"taggram": "perhaps"}, "taggram: Input should be a valid boolean"),
    ],
)
def test_bad_options_are_a_422_naming_the_field(server: Server, form: dict[str, str], expected: str) -> None:
    answer = _tag(server, _wav(1.0), **form)
    assert answer.status_code == 422 and answer.json()["error"].startswith(expected)


def test_no_file_a_huge_body_and_a_lying_length_are_refused_without_a_500(server: Server) -> None:
    missing = httpx.post(f"{server.url}/v1/tag", data={"top_k": "3"})
    assert missing.status_code == 422 and missing.json() == {"error": "file: Field required"}
    huge = bytes(101_000_000)
    declared = httpx.post(f"{server.url}/v1/tag", files={"file": ("big.wav", huge)}, timeout=60)
    assert declared.status_code == 413 and "larger than 100 MB" in declared.json()["error"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'
        for _ in range(110):
            yield bytes(1_000_000)

    multipart = {"Content-Type": "multipart/form-data; boundary=x"}
    streamed = httpx.post(f"{server.url}/v1/tag", content=chunks(), headers=multipart, timeout=60)
    assert streamed.status_code == 413
    with socket.create_connection(("127.0.0.1", int(server.url.rsplit(":", 1)[1]))) as raw:
        raw.sendall(b"POST /v1/tag HTTP/1.1\r\nHost: x\r\nContent-Length: lots\r\n\r\n")
        assert raw.recv(200).split(b"\r\n", 1)[0] in (b"HTTP/1.1 400 Bad Request", b"HTTP/1.1 400 ")
    assert httpx.get(f"{server.url}/health").json() == {"status": "ok"}


def test_with_a_token_only_a_client_that_sends_it_is_answered(trained_run: Path, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token\n")
    guarded = Server(trained_run, "--token-file", str(token_file))
    try:
        assert httpx.get(f"{guarded.url}/health").status_code == 200  # a load balancer's probe needs none
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret-token"}):
            answer = httpx.get(f"{guarded.url}/v1/model", headers=headers)
            assert answer.status_code == 401 and answer.headers["www-authenticate"] == "Bearer"
            assert "bearer token is required" in answer.json()["error"]
        ok = httpx.post(
            f"{guarded.url}/v1/tag",
            files={"file": ("a.wav", _wav(1.0))},
            headers={"Authorization": "Bearer s3cret-token"},
            timeout=60,
        )
        assert ok.status_code == 200
    finally:
        guarded.stop()


#: The bounded load test: clients at once, and requests in all.
CLIENTS, REQUESTS = 20, 200


def test_twenty_clients_at_once_get_every_answer(server: Server) -> None:
    clips = [_wav(5.0, freq) for freq in np.linspace(220, 880, 8)]
    with httpx.Client(timeout=120) as warm:  # the first forward pass pays for torch's warm-up
        assert warm.post(f"{server.url}/v1/tag", files={"file": ("w.wav", clips[0])}).status_code == 200

    def one(i: int) -> tuple[int, float]:
        start = time.perf_counter()
        with httpx.Client(timeout=120) as client:
            answer = client.post(f"{server.url}/v1/tag", files={"file": (f"{i}.wav", clips[i % len(clips)])})
        return answer.status_code, time.perf_counter() - start

    start = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        results = list(pool.map(one, range(REQUESTS)))
    wall = time.perf_counter() - start
    codes = [code for code, _ in results]
    latencies = sorted(seconds for _, seconds in results)
    assert codes == [200] * REQUESTS
    p50, p95 = statistics.median(latencies), latencies[int(0.95 * len(latencies)) - 1]
    print(f"\n{REQUESTS} requests, {CLIENTS} at once: p50 {p50:.2f} s, p95 {p95:.2f} s, {REQUESTS / wall:.1f}/s")
