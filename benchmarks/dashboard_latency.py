"""What a user waits for in the dashboard, measured in a real browser (Debian's chromium).

- server start: `streamlit run app.py` until /_stcore/health answers, and until the Train
  page is drawn;
- Launch to the first train_loss point on the Runs page (quick demo preset);
- the Runs page with 100 runs in the runs folder (script run time, AppTest).

    .venv/bin/python -m benchmarks.dashboard_latency
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

from autotag import manager
from autotag.config import make_config
from autotag.demo import make_demo_dataset
from autotag.runs import create_run, write_status
from tests.test_browser import _browser, _start, _stop, _stop_trainers

ROOT = Path(__file__).resolve().parent.parent


def browser_latencies(tmp: Path, demo: Path) -> dict[str, float]:
    from playwright.sync_api import expect, sync_playwright

    started = time.perf_counter()
    server, url = _start(tmp, demo, "latency.log")
    out = {"server start to /_stcore/health": time.perf_counter() - started}
    try:
        with sync_playwright() as pw:
            browser = _browser(pw)
            page = browser.new_page()
            page.set_default_timeout(120_000)
            page.goto(url)
            expect(page.get_by_text("Train a tagging model")).to_be_visible(timeout=60_000)
            out["server start to the Train page drawn"] = time.perf_counter() - started
            page.get_by_role("button", name="Quick demo preset").click()
            expect(page.get_by_text("Data: ")).to_be_visible()
            clicked = time.perf_counter()
            page.get_by_role("button", name="Launch training").click()
            expect(page.locator(".js-plotly-plot .legendtext", has_text="train_loss").first).to_be_visible(
                timeout=120_000
            )
            out["Launch to the first train_loss point"] = time.perf_counter() - clicked
            browser.close()
    finally:
        _stop(server)
        _stop_trainers(tmp / "runs")
    return out


def runs_page_with(count: int, tmp: Path, demo: Path) -> float:
    runs_dir = tmp / "many"
    config = make_config(data=str(demo), model="tiny")
    for i in range(count):
        run = create_run(config, runs_dir, f"r{i}")
        write_status(
            run,
            state="completed",
            epoch=20,
            max_epochs=20,
            best_val_loss=0.3,
            test_roc_auc=0.9,
            last_metrics={"val_roc_auc": 0.9, "val_pr_auc": 0.8},
            started=time.time() - 60,
            ended=time.time(),
        )
    os.environ["AUTOTAG_RUNS_DIR"] = str(runs_dir)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    at.switch_page("views/runs.py").run()  # warm: imports and caches
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        at.run()
        best = min(best, time.perf_counter() - start)
    assert not at.exception and len(manager.list_runs(runs_dir)) == count
    return best


def main() -> None:
    os.chdir(ROOT)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        demo = make_demo_dataset(tmp / "demo", clips=120, seed=1)
        os.environ["AUTOTAG_CACHE_DIR"] = str(tmp / "cache")
        results = browser_latencies(tmp, demo)
        results["Runs page with 100 runs (script run)"] = runs_page_with(100, tmp, demo)
    targets = {
        "server start to /_stcore/health": 3.0,
        "Launch to the first train_loss point": 6.0,
        "Runs page with 100 runs (script run)": 1.0,
    }
    for name, seconds in results.items():
        target = f"(target <= {targets[name]:.0f} s)" if name in targets else ""
        print(f"{name:<40} {seconds:6.2f} s {target}")
    print(json.dumps({k: round(v, 3) for k, v in results.items()}), file=sys.stderr)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
