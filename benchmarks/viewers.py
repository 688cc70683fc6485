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

    .venv/bin/python -m benchmarks.viewers [--viewers 1 5 10 20] [--seconds 60] [--data data/demo]
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
from autotag.runs.folder import RunFolder
from tests.conftest import stop_trainers, wait_for_run
from tests.test_browser import _browser, _start, _stop

ROOT = Path(__file__).resolve().parent.parent
#: The last train_loss step a page's chart draws (react-plotly keeps the figure's data on its div).
_CHART_STEP = """() => {
  const div = document.querySelector('.js-plotly-plot');
  if (!div || !div.data) return null;
  const trace = div.data.find(t => t.name === 'train_loss');
  return trace && trace.x.length ? trace.x[trace.x.length - 1] : null;
}"""
#: A page as a background tab: what the browser reports when the user switches away.
_HIDE = """() => {
  Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => 'hidden'});
  Object.defineProperty(document, 'hidden', {configurable: true, get: () => true});
  document.dispatchEvent(new Event('visibilitychange'));
}"""


_SHOW = _HIDE.replace("'hidden'", "'visible'").replace("=> true", "=> false")


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


def _measure(server: psutil.Process, pages: list, clock: FileClock, seconds: float, sample_s: float = 2.0) -> dict:
    """Server CPU and chart lag over `seconds`, sampling every page every `sample_s`."""
    start, cpu0 = time.monotonic(), _cpu(server)
    lags_steps: list[int] = []
    lags_s: list[float] = []
    first_step = {}
    last_step = {}
    while time.monotonic() - start < seconds:
        for i, page in enumerate(pages):
            step = page.evaluate(_CHART_STEP)
            at = time.monotonic()
            behind_steps, behind_s = clock.behind(step, at)
            lags_steps.append(behind_steps)
            lags_s.append(behind_s)
            first_step.setdefault(i, step)
            last_step[i] = step
        time.sleep(sample_s)
    wall = time.monotonic() - start
    cpu = 100 * (_cpu(server) - cpu0) / wall
    frozen = (
        sum(1 for i in first_step if first_step[i] == last_step[i])
        if clock.steps_per_second(start, start + wall)
        else 0
    )
    return {
        "server CPU %": round(cpu, 2),
        "per viewer %": round(cpu / max(1, len(pages)), 2),
        "behind (steps) median/max": [statistics.median(lags_steps or [0]), max(lags_steps or [0])],
        "behind (s) median/max": [round(statistics.median(lags_s or [0]), 2), round(max(lags_s or [0]), 2)],
        "frozen charts": frozen,
        "trainer steps/s": round(clock.steps_per_second(start, start + wall), 2),
        "window": (start, start + wall),
    }


def _open_pages(browser, url: str, n: int) -> tuple[list, list[float]]:  # noqa: ANN001 - playwright
    pages, waits = [], []
    for _ in range(n):
        page = browser.new_page()
        page.set_default_timeout(180_000)
        began = time.monotonic()
        page.goto(f"{url}/runs")
        page.wait_for_function(f"({_CHART_STEP})() !== null")
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
                    page.evaluate(_HIDE)
                out[f"{len(pages)} viewers, all hidden, run training"] = _measure(proc, [], clock, seconds)
                for page in pages:
                    page.evaluate(_SHOW)
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
    for level in out.values():
        if isinstance(level, dict):
            level.pop("window", None)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--viewers", type=int, nargs="+", default=[1, 5, 10, 20])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "demo")
    args = parser.parse_args()
    print(json.dumps(run_levels(args.data.resolve(), sorted(args.viewers), args.seconds), indent=2))


if __name__ == "__main__":
    main()
