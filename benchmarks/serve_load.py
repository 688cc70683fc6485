"""How `autotag serve` holds up under many clients: latency and throughput of POST /v1/tag.

One server (`python -m autotag serve`, its own process on loopback) tags 30 s clips of the
data set. First one client, one request after another (the baseline: what a lone user
waits); then `--clients` clients at once sending `--requests` requests in all. Prints each
phase's p50 / p95 / max latency, requests per second, failures (any answer but 200) and the
server's peak memory, and the throughput ratio of the loaded phase to the baseline.

    .venv/bin/python -m benchmarks.serve_load --run runs/<name> [--clients 20] [--requests 200]
        [--data data/demo] [--seconds 30]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import psutil
import soundfile as sf

from autotag.paths import absolute
from tests.serving.test_http import Server


def _clips(data: Path, seconds: float, count: int = 8) -> list[bytes]:
    """`count` WAVs of `seconds` each, cut (or looped) from the data set's audio."""
    files = sorted(p for p in data.rglob("*") if p.suffix.lower() in (".wav", ".flac", ".ogg", ".mp3"))[:count]
    if not files:
        raise SystemExit(f"no audio under {data}")
    clips = []
    for path in files:
        audio, rate = sf.read(path, dtype="float32", always_2d=True)
        want = int(seconds * rate)
        audio = np.tile(audio, (-(-want // len(audio)), 1))[:want]
        buf = io.BytesIO()
        sf.write(buf, audio, rate, format="WAV")
        clips.append(buf.getvalue())
    return clips


def _phase(url: str, clips: list[bytes], clients: int, requests: int) -> dict[str, float]:
    def one(i: int) -> tuple[int, float]:
        start = time.perf_counter()
        with httpx.Client(timeout=300) as client:
            code = client.post(f"{url}/v1/tag", files={"file": (f"{i}.wav", clips[i % len(clips)])}).status_code
        return code, time.perf_counter() - start

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(one, range(requests)))
    wall = time.perf_counter() - start
    latencies = sorted(s for _, s in results)
    return {
        "p50": statistics.median(latencies),
        "p95": latencies[max(0, int(0.95 * len(latencies)) - 1)],
        "max": latencies[-1],
        "per_s": requests / wall,
        "failed": sum(code != 200 for code, _ in results),
    }


def _peak_memory(pid: int, stop: threading.Event, peak: list[int]) -> None:
    process = psutil.Process(pid)
    while not stop.is_set():
        try:
            peak[0] = max(peak[0], sum(p.memory_info().rss for p in [process, *process.children(recursive=True)]))
        except psutil.Error:
            return
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=absolute, required=True)
    parser.add_argument("--data", type=absolute, default=Path("data/demo"))
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--baseline", type=int, default=20, help="requests of the one-client phase")
    args = parser.parse_args()
    clips = _clips(args.data, args.seconds)
    server = Server(args.run)
    stop, peak = threading.Event(), [0]
    watcher = threading.Thread(target=_peak_memory, args=(server.proc.pid, stop, peak), daemon=True)
    watcher.start()
    try:
        _phase(server.url, clips, 1, 2)  # warm-up: torch's first forward pass, a decoder started ahead
        alone = _phase(server.url, clips, 1, args.baseline)
        loaded = _phase(server.url, clips, args.clients, args.requests)
    finally:
        stop.set()
        server.stop()
    cores = psutil.cpu_count()
    print(f"{args.seconds:.0f} s clips, {cores} CPU cores, server peak RSS {peak[0] / 2**20:.0f} MiB")
    print("| clients | requests | p50 (s) | p95 (s) | max (s) | requests/s | failed |")
    print("|---|---|---|---|---|---|---|")
    for clients, requests, r in ((1, args.baseline, alone), (args.clients, args.requests, loaded)):
        print(
            f"| {clients} | {requests} | {r['p50']:.2f} | {r['p95']:.2f} | {r['max']:.2f} | {r['per_s']:.2f} "
            f"| {r['failed']:.0f} |"
        )
    print(f"throughput with {args.clients} clients / one client: {loaded['per_s'] / alone['per_s']:.2f}x")
    sys.exit(1 if loaded["failed"] or alone["failed"] else 0)


if __name__ == "__main__":
    main()
