"""What each viewer of the live Runs page costs, in real browsers (Debian's chromium).

One `tiny` run trains on the data set (its own process, started here, not by the
dashboard); one dashboard serves N headless chromium pages, all on /runs, each showing that
run. For each N, over `--seconds`:

- the server process's CPU (its own, not the pre-warmed trainer's), in % of one core, and
  per viewer;
- how far behind each page's chart is: the last train_loss step it draws against the
  event file (read here at every sample), in steps and in seconds since the first step the
  chart lacks was written; a chart that did not move while the file did is "frozen";
- the trainer's speed (steps per second of the event file) against the same window
  before any page was opened.

Then, with the pages still open: the same CPU with every page hidden while the run trains
(background tabs), and with the pages shown once the run has stopped ("nothing changes");
the time to open the pages, the server's memory, and the tracebacks in its log.

Last, in a dashboard of its own, `--uploads K` pages on /tag upload a clip each at the
same moment, against one lone upload.

    .venv/bin/python -m benchmarks.viewers [--viewers 1 5 10 20] [--seconds 60] [--data data/demo]
        [--uploads 5] [--only viewers|uploads]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path

import psutil

from autotag.config import QUICK_DEMO, make_config
from autotag.runs import manager
from autotag.runs.curves import CurveReader
from autotag.store.run_folder import RunFolder
from tests.conftest import stop_trainers, wait_for_run
from tests.test_browser import CHART_STEP, HIDE, SHOW, _browser, _start, _stop

ROOT = Path(__file__).resolve().parent.parent


class FileClock:
    """When each train_loss step first appeared in the run's event file, polled at 20 Hz."""

    def __init__(self, run: Path) -> None:
        self.reader = CurveReader(RunFolder(run).tb)
        self.seen: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.reader.refresh()
            now = time.monotonic()
            for step in self.reader.get("train_loss").steps:
                self.seen.setdefault(step, now)
            self._stop.wait(0.05)

    def last(self) -> int:
        return max(self.seen, default=-1)

    def behind(self, chart_step: int | None, at: float) -> tuple[int, float]:
        """(steps, seconds) a chart drawing up to `chart_step` lags the file at time `at`."""
        newer = [(s, t) for s, t in self.seen.items() if (chart_step is None or s > chart_step) and t <= at]
        if not newer:
            return 0, 0.0
        return len(newer), at - min(t for _, t in newer)

    def steps_per_second(self, since: float, until: float) -> float:
        steps = [s for s, t in self.seen.items() if since <= t <= until]
        return (max(steps) - min(steps)) / (until - since) if len(steps) > 1 else 0.0

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def _cpu(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system


def _measure(server: psutil.Process, pages: list, clock: FileClock, seconds: float, viewers: int | None = None) -> dict:
    """Server CPU and chart lag over `seconds`, sampling every page of `pages` every 2 s
    (`viewers`: how many pages are open, when fewer are sampled).

    A sample that finds no chart (the page is between two drawings of it) is counted
    apart, not as a lag.
    """
    start, cpu0 = time.monotonic(), _cpu_split(server.pid)
    lags_steps: list[int] = []
    lags_s: list[float] = []
    missing = 0
    first_step: dict[int, int] = {}
    last_step: dict[int, int] = {}
    while time.monotonic() - start < seconds:
        for i, page in enumerate(pages):
            step = page.evaluate(CHART_STEP)
            if step is None:
                missing += 1
                continue
            behind_steps, behind_s = clock.behind(step, time.monotonic())
            lags_steps.append(behind_steps)
            lags_s.append(behind_s)
            first_step.setdefault(i, step)
            last_step[i] = step
        time.sleep(2.0)
    wall = time.monotonic() - start
    cpu = {k: 100 * (v - cpu0[k]) / wall for k, v in _cpu_split(server.pid).items()}
    trainer = clock.steps_per_second(start, start + wall)
    return {
        "server CPU %": round(cpu["server"], 2),
        "per viewer %": round(cpu["server"] / max(1, len(pages) if viewers is None else viewers), 2),
        "chromium CPU %": round(cpu["chromium"], 1),
        "behind (steps) median/max": [statistics.median(lags_steps or [0]), max(lags_steps or [0])],
        "behind (s) median/max": [round(statistics.median(lags_s or [0]), 2), round(max(lags_s or [0]), 2)],
        "samples without a chart": missing,
        "frozen charts": sum(first_step[i] == last_step[i] for i in first_step) if trainer else 0,
        "trainer steps/s": round(trainer, 2),
    }


def _open_pages(browser, url: str, n: int) -> tuple[list, list[float]]:  # noqa: ANN001 - playwright
    pages, waits = [], []
    for _ in range(n):
        page = browser.new_page()
        page.set_default_timeout(180_000)
        began = time.monotonic()
        page.goto(f"{url}/runs")
        page.wait_for_function(f"({CHART_STEP})() !== null")
        waits.append(round(time.monotonic() - began, 1))
        pages.append(page)
    return pages, waits


def _tracebacks(log: Path) -> int:
    text = log.read_text(errors="replace")
    return text.count("Traceback") + text.count("Exception in ASGI application")


def run_levels(data: Path, levels: list[int], seconds: float) -> dict:
    from playwright.sync_api import sync_playwright

    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        config = make_config(data=str(data), **{**QUICK_DEMO, "max_epochs": 1000, "patience": 100})
        run = manager.launch(config, runs_dir=tmp / "runs", name="watched")
        clock = FileClock(run)
        server = None
        try:
            wait_for_run(run, lambda s: s.get("global_step", 0) > 20, timeout=600)
            began = time.monotonic()
            time.sleep(seconds)
            alone = clock.steps_per_second(began, time.monotonic())
            out["trainer steps/s, no dashboard"] = round(alone, 2)
            server, url = _start(tmp, data, "viewers.log")
            proc = psutil.Process(server.pid)
            with sync_playwright() as pw:
                browser = _browser(pw)
                pages: list = []
                out["0 viewers"] = _measure(proc, pages, clock, seconds)
                for n in levels:
                    more, waits = _open_pages(browser, url, n - len(pages))
                    pages += more
                    level = _measure(proc, pages, clock, seconds)
                    level["trainer speed vs none"] = round(level["trainer steps/s"] / alone, 2) if alone else None
                    level["page open (s) max"] = max(waits, default=0)
                    out[f"{n} viewers"] = level
                for page in pages:
                    page.evaluate(HIDE)
                out[f"{len(pages)} viewers, all hidden, run training"] = _measure(
                    proc, [], clock, seconds, viewers=len(pages)
                )
                for page in pages:
                    page.evaluate(SHOW)
                manager.stop(run)
                wait_for_run(run, lambda s: s["state"] != "running", timeout=120)
                time.sleep(5)  # the pages see the final state and slow down
                out[f"{len(pages)} viewers, run stopped"] = _measure(proc, pages, clock, seconds)
                out["server memory (MB)"] = round(proc.memory_info().rss / 2**20)
                browser.close()
            out["server log tracebacks"] = _tracebacks(tmp / "viewers.log")
        finally:
            clock.close()
            if server is not None:
                _stop(server)
            stop_trainers(tmp / "runs")
    return out


def _cpu_split(server_pid: int) -> dict[str, float]:
    """CPU seconds so far of the server, its children (decoders, trainers) and the browsers."""
    out = {"server": 0.0, "server's children": 0.0, "chromium": 0.0}
    server = psutil.Process(server_pid)
    times = server.cpu_times()
    out["server"] = times.user + times.system
    out["server's children"] = times.children_user + times.children_system  # the ones that ended
    for child in server.children(recursive=True):
        try:
            out["server's children"] += _cpu(child)
        except psutil.Error:
            pass
    for proc in psutil.process_iter(["name"]):
        try:
            if "chrom" in (proc.info["name"] or ""):
                out["chromium"] += _cpu(proc)
        except psutil.Error:
            pass
    return out


def _tags_shown(page) -> bool:  # noqa: ANN001 - playwright page
    return page.locator("strong", has_text="Tags:").count() > 0


def run_uploads(data: Path, k: int) -> dict:
    """Seconds from upload to tags shown on /tag: a lone upload (the second of two, warm),
    then `k` pages uploading at the same moment, each a clip of its own (30 s, 44.1 kHz
    stereo WAV, `shortchunk_cnn`)."""
    from playwright.sync_api import sync_playwright

    from benchmarks.dashboard_latency import _tag_run

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        _tag_run(tmp / "tag", data)
        clips = iter(sorted((tmp / "tag").glob("clip*.wav")))
        server, url = _start(tmp / "tag", data, "uploads.log")
        try:
            with sync_playwright() as pw:
                browser = _browser(pw)
                pages = []
                for _ in range(k):
                    page = browser.new_page()
                    page.set_default_timeout(180_000)
                    page.goto(url)  # the Train page, as a user arrives (its chart loads plotly.js)
                    page.locator(".js-plotly-plot").first.wait_for(state="attached")
                    page.get_by_role("link", name="Tag", exact=True).click()
                    page.get_by_text("Tags: tag00, tag01").wait_for()  # the model is loaded
                    pages.append(page)
                uploaders = [p.locator("[data-testid='stFileUploaderDropzoneInput']") for p in pages]
                lone = []
                for _ in range(2):
                    began = time.monotonic()
                    uploaders[0].set_input_files([str(next(clips))])
                    pages[0].locator("strong", has_text="Tags:").first.wait_for()
                    lone.append(time.monotonic() - began)
                    pages[0].get_by_test_id("stFileChipDeleteBtn").first.click()
                    pages[0].locator("strong", has_text="Tags:").first.wait_for(state="hidden")
                time.sleep(2)  # the decoder started ahead for the next upload is ready
                cpu0 = _cpu_split(server.pid)
                began = time.monotonic()
                for uploader in uploaders:
                    uploader.set_input_files([str(next(clips))])
                done: dict[int, float] = {}
                while len(done) < k and time.monotonic() - began < 120:
                    for i, page in enumerate(pages):
                        if i not in done and _tags_shown(page):
                            done[i] = time.monotonic() - began
                    time.sleep(0.02)
                cpu = {k: round(v - cpu0.get(k, 0.0), 2) for k, v in _cpu_split(server.pid).items()}
                browser.close()
        finally:
            _stop(server)
    together = sorted(done.values())
    return {
        "lone upload to tags (s)": round(lone[-1], 2),
        f"{k} simultaneous uploads to tags (s)": [round(t, 2) for t in together],
        "slowest minus lone (s)": round(together[-1] - lone[-1], 2) if len(together) == k else None,
        "CPU seconds meanwhile": cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--viewers", type=int, nargs="+", default=[1, 5, 10, 20])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "demo")
    parser.add_argument("--uploads", type=int, default=5, help="simultaneous uploads on /tag (0: none)")
    parser.add_argument("--only", choices=["viewers", "uploads"])
    args = parser.parse_args()
    out = {}
    if args.only != "uploads":
        out["viewers"] = run_levels(args.data.resolve(), sorted(args.viewers), args.seconds)
    if args.only != "viewers" and args.uploads:
        out["uploads"] = run_uploads(args.data.resolve(), args.uploads)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
