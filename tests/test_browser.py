"""One real-browser journey through the dashboard: Debian's chromium driven by Playwright.

Train the quick demo from the sliders, watch val_loss appear and the run complete,
reload mid-run, tag an uploaded piano recording from a soundfont the model never heard
and a clip recorded from a fake microphone.
Screenshots of each step are saved in the test's tmp folder.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from autotag.data.demo import NOTES_FILE
from autotag.data.instruments import OTHER_SOUNDFONT, Renderer, solo_clip
from autotag.runs import manager
from autotag.runs.curves import CurveReader
from autotag.store.run_folder import RunFolder, create_run
from tests.conftest import shipped_env, stop_trainers

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ROOT = Path(__file__).parent.parent
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (scripts/setup.sh --dev)"
    ),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(tmp_path: Path, demo: Path, log_name: str, **extra_env: str) -> tuple[subprocess.Popen, str]:
    """`streamlit run app.py` on a free loopback port, with this test's own folders."""
    env = {
        **os.environ,
        "AUTOTAG_DEMO_DIR": str(demo),
        "AUTOTAG_RUNS_DIR": str(tmp_path / "runs"),
        "AUTOTAG_CACHE_DIR": str(tmp_path / "cache"),
        **extra_env,
    }
    return _serve([sys.executable, "-m", "streamlit", "run", "app.py"], ROOT, env, tmp_path / log_name)


def _serve(cmd: list[str], cwd: Path, env: dict[str, str], log: Path) -> tuple[subprocess.Popen, str]:
    """Start a dashboard on a free loopback port; returns it once /_stcore/health says ok."""
    port = _free_port()
    cmd = [*cmd, "--server.headless", "true", "--server.address", "127.0.0.1", "--server.port", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                return proc, url
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                _stop(proc)
                raise AssertionError(log.read_text()) from None
            time.sleep(0.3)


def _put_claiming(url: str, length: int, headers: dict[str, str]) -> int:
    """Status of a PUT that announces `length` bytes of body but sends only a few."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.putrequest("PUT", parts.path)
        for name, value in {
            **headers,
            "Content-Type": "multipart/form-data; boundary=b",
            "Content-Length": str(length),
        }.items():
            conn.putheader(name, value)
        conn.endheaders()
        conn.send(b"--b\r\n")
        return conn.getresponse().status
    finally:
        conn.close()


def _stop(proc: subprocess.Popen) -> None:
    """Stop a server we started, by its PID."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture
def shipped_dashboard(shipped_clone: Path, tmp_path: Path) -> Iterator[str]:
    """The dashboard exactly as README's `bash scripts/dashboard.sh` starts it: from a fresh
    clone's root, no AUTOTAG_* variable (so `./runs`, `./data/demo`, the default feature
    cache and the pre-warmed trainer), plus only the flags a test needs (port, headless)."""
    proc, url = _serve(["bash", "scripts/dashboard.sh"], shipped_clone, shipped_env(), tmp_path / "streamlit.log")
    try:
        yield url
    finally:
        _stop(proc)
        stop_trainers(shipped_clone / "runs")


def _browser(pw, mic: Path | None = None):  # noqa: ANN001, ANN202 - playwright objects
    args = [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
    ]
    if mic:
        args += [
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={mic}",
        ]
    return pw.chromium.launch(executable_path=CHROMIUM, args=args)


def _pianos(folder: Path) -> tuple[Path, dict[str, Path]]:
    """A TimGM6mb piano solo as FLAC, and the same piece at -1 and at -41 dBFS peak as float
    WAVs ("loud", "quiet": no 16-bit rounding sets them apart)."""
    piano = folder / "piano.flac"
    audio = solo_clip(Renderer(OTHER_SOUNDFONT), "piano", seed=1).audio
    sf.write(piano, audio, 16000)
    loud = audio * (10 ** (-1 / 20) / np.abs(audio).max())
    copies = {name: folder / f"{name}.wav" for name in ("loud", "quiet")}
    sf.write(copies["loud"], loud.astype("f4"), 16000, subtype="FLOAT")
    sf.write(copies["quiet"], (loud * 0.01).astype("f4"), 16000, subtype="FLOAT")
    return piano, copies


def test_quick_demo_as_shipped_trains_completes_and_tags_in_a_real_browser(
    shipped_dashboard: str, shipped_clone: Path, tmp_path: Path
) -> None:
    """The product's headline journey with the shipped defaults: Quick demo, Launch, watch it
    learn (and reload mid-run), completed, then tag an upload and a microphone recording.

    The upload is a piano playing alone, rendered from TimGM6mb: the shipped demo set is
    FluidR3_GM's instruments, so the model has never heard this piano (of ten such solos,
    nine came out tagged `piano` when this test was written; this one is the second).
    """
    from playwright.sync_api import expect, sync_playwright

    dashboard, runs_dir, demo = shipped_dashboard, shipped_clone / "runs", shipped_clone / "data" / "demo"
    assert "FluidR3_GM" in (demo / NOTES_FILE).read_text(), "set-up made no real-instrument demo set"
    piano, copies = _pianos(tmp_path)
    rows = len((demo / "tags.csv").read_text().splitlines()) - 1
    before = {r.name for r in manager.list_runs(runs_dir)}
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with sync_playwright() as pw:
        browser = _browser(pw, mic=demo / "audio" / "clip_0003.wav")
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        context.grant_permissions(["microphone"], origin=dashboard)
        page = context.new_page()
        page.set_default_timeout(60_000)

        page.goto(dashboard)
        expect(page.get_by_text("Train a tagging model")).to_be_visible()
        page.get_by_role("button", name="Quick demo preset").click()
        expect(page.get_by_role("textbox", name="Run name")).to_have_value("quick-demo")
        expect(page.get_by_text(f"Data: {rows} rows")).to_be_visible()
        page.screenshot(path=str(shots / "1_train.png"))
        page.get_by_role("button", name="Launch training").click()
        launched = time.monotonic()

        expect(page.get_by_role("heading", name="Runs")).to_be_visible()
        expect(page.locator(".js-plotly-plot .legendtext", has_text="val_loss").first).to_be_visible(timeout=120_000)
        runs = [r for r in manager.list_runs(runs_dir) if r.name not in before]
        assert len(runs) == 1 and runs[0].state == "running", [(r.name, r.state) for r in runs]
        name = runs[0].name
        page.screenshot(path=str(shots / "2_runs_live.png"))

        page.reload()  # a direct load of /runs must still go through app.py's navigation
        expect(page.get_by_text(f"{name}: running")).to_be_visible()
        expect(page.get_by_role("link", name="Tag", exact=True)).to_be_visible()
        expect(page.get_by_role("link", name="app", exact=True)).to_have_count(0)
        assert {r.name for r in manager.list_runs(runs_dir)} - before == {name}  # not stopped, not duplicated
        # A guard, not a target (benchmarks.quick_demo times it): on a busy 2-core machine the
        # same fit took 145-210 s where it takes 38 s idle.
        expect(page.get_by_text(f"{name}: completed")).to_be_visible(timeout=480_000)
        print(f"quick demo on {rows} clips: Launch to completed shown in {time.monotonic() - launched:.1f} s")
        expect(page.get_by_text("ROC-AUC (macro)")).to_be_visible()
        page.screenshot(path=str(shots / "3_runs_done.png"))

        page.get_by_role("link", name="Tag", exact=True).click()
        expect(page.get_by_role("heading", name="Tag your audio")).to_be_visible()
        with page.expect_request(lambda r: "/_stcore/upload_file/" in r.url and r.method == "PUT") as sent:
            uploads = [str(piano), str(copies["loud"]), str(copies["quiet"])]
            page.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files(uploads)
        upload_url, token = sent.value.url, sent.value.headers["x-xsrftoken"]
        for heading in ("piano.flac", "loud.wav", "quiet.wav"):
            expect(page.get_by_role("heading", name=heading)).to_be_visible()
        tags_lines = page.locator("[data-testid='stMarkdownContainer']", has_text="Tags:")
        expect(tags_lines).to_have_count(3)
        expect(tags_lines.first).to_contain_text("piano")
        assert tags_lines.nth(1).inner_text() == tags_lines.nth(2).inner_text()  # 40 dB apart: the same tags
        page.screenshot(path=str(shots / "4_tag_upload.png"), full_page=True)

        # The same upload endpoint, hit directly: without the XSRF token, and over the size limit.
        small = {"file": {"name": "x.wav", "mimeType": "audio/wav", "buffer": b"RIFF"}}
        assert page.request.put(upload_url, multipart=small).status == 403
        cookies = "; ".join(f"{c['name']}={c['value']}" for c in context.cookies(dashboard))
        assert _put_claiming(upload_url, 101 << 20, {"X-Xsrftoken": token, "Cookie": cookies}) == 413

        recorder = page.locator("[data-testid='stAudioInput']")
        recorder.get_by_role("button", name="Record").click()
        page.wait_for_timeout(3000)
        recorder.get_by_role("button", name="Stop recording").click()
        expect(page.get_by_role("heading", name="recording.wav")).to_be_visible()
        page.screenshot(path=str(shots / "5_tag_recording.png"), full_page=True)
        browser.close()
    assert len(list(shots.glob("*.png"))) == 5


def test_a_newcomer_tags_an_upload_with_a_published_model_in_a_real_browser(
    tmp_path: Path, demo_dataset: Path, published_weights: Path
) -> None:
    """Nothing trained: the Tag page offers a published model; one click imports it (from the
    mirror here), and an upload gets MagnaTagATune's tags."""
    from playwright.sync_api import expect, sync_playwright

    piano, _ = _pianos(tmp_path)
    proc, url = _start(tmp_path, demo_dataset, "streamlit.log", AUTOTAG_PRETRAINED_DIR=str(published_weights))
    try:
        with sync_playwright() as pw:
            browser = _browser(pw)
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            page.set_default_timeout(60_000)
            page.goto(f"{url}/tag")
            expect(page.get_by_text("No model yet")).to_be_visible()
            page.get_by_role("button", name="Tag with a published model").click()
            expect(page.get_by_text("mtat-fcn").first).to_be_visible()
            page.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files(str(piano))
            expect(page.get_by_role("heading", name="piano.flac")).to_be_visible()
            tags_line = page.locator("[data-testid='stMarkdownContainer']", has_text="Tags:").first
            expect(tags_line).to_contain_text("piano")  # 0.62 when written; slow 0.36, guitar 0.31 below 0.5
            expect(page.locator(".js-plotly-plot").first).to_be_visible()
            page.screenshot(path=str(tmp_path / "published_tag.png"), full_page=True)
            browser.close()
    finally:
        _stop(proc)
    [run] = manager.list_runs(tmp_path / "runs")
    assert run.status.published == "mtat-fcn"
    assert "Traceback" not in (tmp_path / "streamlit.log").read_text()


def test_a_restarted_dashboard_shows_the_run_still_training(tmp_path: Path, demo_dataset: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    from autotag.config import make_config

    first, url = _start(tmp_path, demo_dataset, "first.log")
    try:
        run = manager.launch(
            # Longer than the test, whatever the machine's speed (60 epochs could end first); stopped at its end.
            make_config(data=str(demo_dataset), model="tiny", max_epochs=1000, patience=100),
            runs_dir=tmp_path / "runs",
        )
        with sync_playwright() as pw:
            browser = _browser(pw)
            page = browser.new_page()
            page.set_default_timeout(60_000)
            page.goto(f"{url}/runs")
            expect(page.get_by_text(f"{run.name}: running")).to_be_visible(timeout=90_000)
            _stop(first)  # the dashboard goes down ...
            pid = RunFolder(run).read_status().pid
            assert manager.derive_state(run) == "running"  # ... the training does not
            second, url = _start(tmp_path, demo_dataset, "second.log")
            try:
                page.goto(f"{url}/runs")
                expect(page.get_by_text(f"{run.name}: running")).to_be_visible()
                expect(page.locator(".js-plotly-plot .legendtext", has_text="val_loss").first).to_be_visible(
                    timeout=90_000
                )
                page.screenshot(path=str(tmp_path / "restarted.png"))
                assert RunFolder(run).read_status().pid == pid
            finally:
                _stop(second)
            browser.close()
    finally:
        if first.poll() is None:
            _stop(first)
        stop_trainers(tmp_path / "runs")


#: The last train_loss step a page's chart draws (react-plotly keeps the figure's data on its div).
CHART_STEP = """() => {
  const div = document.querySelector('.js-plotly-plot');
  if (!div || !div.data) return null;
  const trace = div.data.find(t => t.name === 'train_loss');
  return trace && trace.x.length ? trace.x[trace.x.length - 1] : null;
}"""
#: The page as a background tab: what the browser reports when the user switches away.
HIDE = """() => {
  Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => 'hidden'});
  Object.defineProperty(document, 'hidden', {configurable: true, get: () => true});
  document.dispatchEvent(new Event('visibilitychange'));
}"""
SHOW = HIDE.replace("'hidden'", "'visible'").replace("=> true", "=> false")


def _file_step(run: Path) -> int:
    reader = CurveReader(RunFolder(run).tb)
    reader.refresh()
    return reader.get("train_loss").steps[-1]


def _drop_handshakes(url: str, count: int) -> None:
    """Open the dashboard's websocket and hang up before, during or after the server accepts."""
    port = int(url.rsplit(":", 1)[1])
    request = (
        f"GET /_stcore/stream HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        f"Origin: http://127.0.0.1:{port}\r\nSec-WebSocket-Protocol: streamlit\r\n\r\n"
    ).encode()
    for i in range(count):
        with socket.create_connection(("127.0.0.1", port)) as conn:
            if i % 2:  # a reset instead of a close
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.sendall(request)
            time.sleep((0, 0.001, 0.01, 0.05)[i % 4])


def test_a_hidden_tab_asks_for_nothing_and_closed_tabs_leave_no_traceback(tmp_path: Path, demo_dataset: Path) -> None:
    """While a run trains, a visible Runs page follows its event file; hidden, it stops
    refreshing (its chart stays where it was) and catches up as soon as it is shown.
    Tabs closed while loading or refreshing, and websockets dropped in the handshake,
    leave no traceback in the server's log."""
    from playwright.sync_api import sync_playwright

    from autotag.config import make_config

    run = manager.launch(
        make_config(data=str(demo_dataset), model="tiny", max_epochs=1000, patience=100), runs_dir=tmp_path / "runs"
    )
    server, url = _start(tmp_path, demo_dataset, "server.log")
    try:
        with sync_playwright() as pw:
            browser = _browser(pw)
            page = browser.new_page()
            page.set_default_timeout(120_000)
            page.goto(f"{url}/runs")
            page.wait_for_function(f"({CHART_STEP})() > 0")
            first = page.evaluate(CHART_STEP)
            page.wait_for_function(f"({CHART_STEP})() > {first}", timeout=20_000)  # visible: it follows

            page.evaluate(HIDE)
            time.sleep(3)  # a refresh already on its way lands
            hidden_at = page.evaluate(CHART_STEP)
            time.sleep(5)
            assert page.evaluate(CHART_STEP) == hidden_at, "a hidden tab kept refreshing"
            assert _file_step(run) > hidden_at, "the trainer wrote nothing meanwhile: the check proves nothing"
            page.evaluate(SHOW)
            page.wait_for_function(f"({CHART_STEP})() > {hidden_at}", timeout=5_000)  # shown: at once

            for i in range(12):
                tab = browser.new_page()
                tab.goto(f"{url}/runs", wait_until="commit")
                time.sleep((0.05, 0.3, 1.0, 2.5)[i % 4])
                tab.close()
            _drop_handshakes(url, 20)
            browser.close()
        time.sleep(2)
    finally:
        _stop(server)
        stop_trainers(tmp_path / "runs")
    log = (tmp_path / "server.log").read_text()
    assert "Traceback" not in log and "Exception" not in log, log[-4000:]


@pytest.mark.parametrize(
    ("path", "heading"),
    [
        ("train", "Train a tagging model"),
        ("", "Train a tagging model"),
        ("runs", "Runs"),
        ("sweep", "Sweep hyperparameters"),
        ("tag", "Tag your audio"),
        ("library", "Browse a tagged library"),
        ("data", "Data sets"),
    ],
)
def test_a_fresh_dashboards_first_request_to_a_page_url_goes_through_app_py(
    path: str, heading: str, tmp_path: Path
) -> None:
    """A fresh server runs pages/<path>.py alone for /<path> (Streamlit's older pages/ layout).

    The page must hand over to app.py: its navigation, sidebar and page settings, the page
    the URL names, and no "Page not found" dialog (it would leave the page inert). "/" shows
    Train at /train. The same after a reload, and the sidebar's links still lead elsewhere.
    """
    from playwright.sync_api import expect, sync_playwright

    def shows(page, url: str, heading: str) -> None:  # noqa: ANN001 - a playwright page
        expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
        nav = page.get_by_test_id("stSidebarNav")
        for name in ("Train", "Runs", "Sweep", "Tag", "Library", "Data"):
            expect(nav.get_by_role("link", name=name, exact=True)).to_be_visible()
        expect(nav.get_by_role("link")).to_have_count(6)  # not the older layout's "app", "runs", ...
        expect(page.get_by_test_id("stSidebar").get_by_text("Runs folder:")).to_be_visible()
        expect(page).to_have_title("autotag")  # app.py's set_page_config
        expect(page).to_have_url(url)
        expect(page.get_by_text("Page not found")).to_have_count(0)
        expect(page.get_by_role("dialog")).to_have_count(0)

    server, url = _start(tmp_path, tmp_path / "demo", "fresh.log")
    try:
        with sync_playwright() as pw:
            browser = _browser(pw)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(60_000)
            page.goto(f"{url}/{path}")  # the server's first request
            shows(page, f"{url}/{path or 'train'}", heading)
            page.screenshot(path=str(tmp_path / f"first_request_{path or 'root'}.png"))
            page.reload()
            shows(page, f"{url}/{path or 'train'}", heading)
            other, other_heading = ("Runs", "Runs") if path != "runs" else ("Train", "Train a tagging model")
            page.get_by_test_id("stSidebarNav").get_by_role("link", name=other, exact=True).click()
            shows(page, f"{url}/{other.lower()}", other_heading)
            browser.close()
    finally:
        _stop(server)
    assert "Traceback" not in (tmp_path / "fresh.log").read_text()


def _finished_run(runs_dir: Path, name: str, **status: object) -> Path:
    """A run folder as a finished run leaves it (no trainer ever ran: the pages only read it)."""
    from autotag.config import make_config

    run = create_run(make_config(data=str(runs_dir), model="tiny"), runs_dir, name)
    now = time.time()
    fields = {"state": "completed", "epoch": 20, "max_epochs": 20, "started": now - 60, "ended": now, **status}
    RunFolder(run).write_status(**fields)
    return run


def test_the_sidebar_counts_follow_runs_started_and_ended_elsewhere(tmp_path: Path) -> None:
    """The sidebar's counts change without a click: on the Train page (the sidebar's own
    clock) and on the Sweep page (its live part redraws the page), for a run that appears
    in the runs folder and one whose trainer ends. The trainer is a stand-in process."""
    from playwright.sync_api import expect, sync_playwright

    from autotag.store.procs import process_start_time

    runs_dir = tmp_path / "runs"
    runs_dir.mkdir()
    trainer = subprocess.Popen(["sleep", "300"], start_new_session=True)
    training = _finished_run(runs_dir, "training", state="running", ended=None)
    RunFolder(training).write_status(pid=trainer.pid, pid_start=process_start_time(trainer.pid))
    server, url = _start(tmp_path, tmp_path / "demo", "counts.log")
    try:
        with sync_playwright() as pw:
            browser = _browser(pw)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(60_000)
            sidebar = page.get_by_test_id("stSidebar")
            page.goto(f"{url}/train")
            expect(page.get_by_role("heading", name="Train a tagging model")).to_be_visible()
            expect(sidebar.get_by_text("1 run · 1 training (limit 1) · 0 queued")).to_be_visible()

            _finished_run(runs_dir, "from-the-cli")  # a look every 5 s while a run trains
            expect(sidebar.get_by_text("2 runs · 1 training (limit 1) · 0 queued")).to_be_visible(timeout=15_000)
            page.screenshot(path=str(tmp_path / "counts_train.png"))

            sidebar.get_by_role("link", name="Sweep", exact=True).click()
            expect(page.get_by_role("heading", name="Sweep hyperparameters")).to_be_visible()
            _finished_run(runs_dir, "another")
            expect(sidebar.get_by_text("3 runs · 1 training (limit 1) · 0 queued")).to_be_visible(timeout=15_000)
            trainer.kill()  # the trainer ends: its run is "crashed" at the next look
            trainer.wait()
            expect(sidebar.get_by_text("3 runs · 0 training (limit 1) · 0 queued")).to_be_visible(timeout=15_000)
            page.screenshot(path=str(tmp_path / "counts_sweep.png"))
            browser.close()
    finally:
        if trainer.poll() is None:
            trainer.kill()
            trainer.wait()
        _stop(server)
    log = (tmp_path / "counts.log").read_text()
    assert "Traceback" not in log and "Exception" not in log, log[-4000:]


def many_runs(runs_dir: Path, data: Path, count: int, trials: int = 60, sweeps: int = 3) -> list[Path]:
    """`count` finished runs, the oldest first; the last `trials` of them the trials of `sweeps`
    sweeps (status.json's `sweep`: sweep-0, sweep-1, ...). Each run has a test ROC-AUC of its
    own, in no order of creation, and every trial's is below every other run's. Shared with
    benchmarks/dashboard_latency.py."""
    from autotag.config import make_config

    config = make_config(data=str(data), model="tiny")
    made, now = [], time.time()
    for i in range(count):
        trial = i >= count - trials
        run = create_run(config, runs_dir, f"r{i}")
        RunFolder(run).write_status(
            sweep=f"sweep-{i % sweeps}" if trial else None,
            state="completed",
            epoch=20,
            max_epochs=20,
            best_val_loss=0.3,
            test_roc_auc=0.3 + i / 1e5 if trial else 0.5 + (i * 7919 % count) / (2 * count),
            last_metrics={"val_roc_auc": 0.9, "val_pr_auc": 0.8},
            created=now - count + i,
            started=now - count + i,
            ended=now - count + i + 60,
        )
        made.append(run)
    return made


def test_the_runs_page_with_500_runs_groups_searches_sorts_and_pages_in_time(tmp_path: Path) -> None:
    """Issue 27: 500 runs (60 of them the trials of 3 sweeps). Each sweep is one row until it is
    filtered on, a search narrows the rows, a metric sorts them, 50 a page. The time from a
    click on Runs to the table drawn is printed (target 1.5 s on an idle machine; the bound
    asserted is loose, for a busy one)."""
    from playwright.sync_api import expect, sync_playwright

    wait_ms = 30_000  # ms: a busy 2-core machine draws the grid seconds late (expect's default is 5 s)
    runs = many_runs(tmp_path / "runs", tmp_path, 500)
    plain = runs[:440]
    best = max(plain, key=lambda r: RunFolder(r).read_status().test_roc_auc)
    server, url = _start(tmp_path, tmp_path / "demo", "many.log")
    try:
        with sync_playwright() as pw:
            browser = _browser(pw)
            page = browser.new_page(viewport={"width": 1920, "height": 1000})  # every column shown
            page.set_default_timeout(60_000)
            grid = page.get_by_test_id("stDataFrame").locator("table[role=grid]")
            first_cell = grid.get_by_test_id("glide-cell-0-0")

            def runs_shown(count: int) -> list[str]:  # the first rows, as the grid's accessible table has them
                return [grid.get_by_test_id(f"glide-cell-0-{i}").inner_text() for i in range(count)]

            started = time.perf_counter()
            page.goto(f"{url}/runs")  # the server's first request: its imports, a first listing
            expect(page.get_by_text("rows 1-50 of 443")).to_be_visible(timeout=wait_ms)
            expect(first_cell).to_have_text(re.compile(r"sweep-\d \(20 trials\)"), timeout=wait_ms)
            cold = time.perf_counter() - started

            page.get_by_test_id("stSidebarNav").get_by_role("link", name="Train", exact=True).click()
            expect(page.get_by_role("heading", name="Train a tagging model")).to_be_visible(timeout=wait_ms)
            started = time.perf_counter()
            page.get_by_test_id("stSidebarNav").get_by_role("link", name="Runs", exact=True).click()
            expect(page.get_by_text("rows 1-50 of 443")).to_be_visible(timeout=wait_ms)  # 440 runs, 3 sweeps
            expect(first_cell).to_have_text(re.compile(r"sweep-\d \(20 trials\)"), timeout=wait_ms)
            drawn = time.perf_counter() - started
            print(f"Runs page with 500 runs: table drawn {drawn:.2f} s after a click on Runs ({cold:.2f} s cold)")
            expect(grid).to_have_attribute("aria-rowcount", "51", timeout=wait_ms)  # 50 rows and the header
            assert sorted(runs_shown(3)) == [f"sweep-{i} (20 trials)" for i in range(3)]  # the newest
            page.screenshot(path=str(tmp_path / "runs_500.png"))

            search = page.get_by_label("Search runs")
            search.fill("_r12")
            search.press("Enter")
            expect(grid).to_have_attribute("aria-rowcount", "12", timeout=wait_ms)  # r12, r120 ... r129: one page
            expect(page.get_by_text("rows 1-50 of 443")).to_be_hidden(timeout=wait_ms)
            assert sorted(n.split("_")[1] for n in runs_shown(11)) == sorted(["r12", *(f"r12{i}" for i in range(10))])
            search.fill("")
            search.press("Enter")
            expect(page.get_by_text("rows 1-50 of 443")).to_be_visible(timeout=wait_ms)

            page.get_by_test_id("stSelectbox").filter(has_text="Sort by").click()
            page.get_by_role("option", name="test ROC-AUC", exact=True).click()
            expect(first_cell).to_have_text(best.name, timeout=wait_ms)  # the best first (descending)
            page.screenshot(path=str(tmp_path / "runs_500_sorted.png"))
            page.get_by_label("Page", exact=True).fill("2")
            page.get_by_label("Page", exact=True).press("Enter")
            expect(page.get_by_text("rows 51-100 of 443")).to_be_visible(timeout=wait_ms)
            expect(first_cell).not_to_have_text(best.name, timeout=wait_ms)

            page.get_by_text("Filters and columns").click()
            # The expander grows to its height in an animation (its <details> clipped by an inline
            # "overflow: hidden" till the end). A multiselect's options list closes when anything
            # around it scrolls, and the clipped <details> scrolls by a few pixels as it grows
            # around the focused filter: options clicked then land on a closing list and are not
            # chosen (no rerun is sent). So the filter is used once the expander stands still.
            filters = page.get_by_test_id("stExpander").filter(has_text="Filters and columns").locator("details")
            expect(filters).not_to_have_attribute("style", re.compile("overflow"), timeout=wait_ms)
            sweep_filter = page.get_by_role("combobox", name="sweep", exact=True)
            sweep_filter.click()
            sweep_filter.press_sequentially("sweep-1")  # typed: the options open even if the click came early
            page.get_by_role("option", name="sweep-1", exact=True).click()  # chosen: the page reruns with it
            sweep_widget = page.get_by_test_id("stMultiSelect").filter(has=sweep_filter)
            # The widget holds the choice: its chip shows (aria-hidden while the options are open).
            chosen = sweep_widget.get_by_role("group", name="Selected values", include_hidden=True)
            expect(chosen).to_have_text("sweep-1", timeout=wait_ms)
            page.keyboard.press("Escape")  # the options close
            expect(page.get_by_role("option", name="sweep-0", exact=True)).to_be_hidden(timeout=wait_ms)
            expect(grid).to_have_attribute("aria-rowcount", "21", timeout=wait_ms)  # the sweep's 20 trials, a row each
            trials = {r.name for r in runs if RunFolder(r).read_status().sweep == "sweep-1"}
            assert set(runs_shown(10)) <= trials
            page.screenshot(path=str(tmp_path / "runs_500_sweep.png"))
            browser.close()
    finally:
        _stop(server)
    log = (tmp_path / "many.log").read_text()
    assert "Traceback" not in log and "Exception" not in log, log[-4000:]
    assert drawn < 10, f"the Runs page with 500 runs took {drawn:.1f} s to draw its table"


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_many_uploads_do_not_grow_server_memory(tmp_path: Path, demo_dataset: Path, trained_run: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    shutil.copytree(trained_run, tmp_path / "runs" / trained_run.name)
    server, url = _start(tmp_path, demo_dataset, "memory.log")
    clips = sorted((demo_dataset / "audio").glob("*.wav"))
    rss = []
    try:
        with sync_playwright() as pw:
            browser = _browser(pw)
            page = browser.new_page()
            page.set_default_timeout(60_000)
            page.goto(f"{url}/tag")
            uploader = page.locator("[data-testid='stFileUploaderDropzoneInput']")
            for i in range(30):
                clip = clips[i % len(clips)]
                uploader.set_input_files([str(clip)])
                expect(page.get_by_role("heading", name=clip.name)).to_be_visible(timeout=30_000)
                rss.append(_rss_mb(server.pid))
                page.get_by_test_id("stFileChipDeleteBtn").first.click()  # one upload at a time
                expect(page.get_by_role("heading", name=clip.name)).to_be_hidden(timeout=30_000)
            browser.close()
    finally:
        _stop(server)
    print(f"server RSS over 30 uploads (MB): {[round(r) for r in rss]}")
    growth = rss[-1] - rss[9]  # after a warm-up of 10 uploads (model loaded, caches filled)
    assert growth < 60, f"server RSS grew {growth:.0f} MB over 20 uploads: {[round(r) for r in rss]}"


def test_the_curves_go_against_epochs_or_time_and_save_as_svg_with_each_tags_curves(
    tmp_path: Path, trained_run: Path
) -> None:
    """Issue 27's chart options in a real browser: the x axis follows the choice, the toolbar
    saves the figure in the chosen format, the CSV holds every point on every axis, and the
    per-tag validation curves of the run are drawn, a line per tag."""
    from playwright.sync_api import expect, sync_playwright

    wait_ms = 30_000  # a busy 2-core machine draws seconds late (expect's default is 5 s)
    run = shutil.copytree(trained_run, tmp_path / "runs" / trained_run.name)
    server, url = _start(tmp_path, tmp_path / "demo", "charts.log", AUTOTAG_WARM="0")
    try:
        with sync_playwright() as pw:
            browser = _browser(pw)
            page = browser.new_page(viewport={"width": 1400, "height": 1600}, accept_downloads=True)
            page.set_default_timeout(60_000)
            page.goto(f"{url}/runs")
            curves = page.locator(".js-plotly-plot").first
            expect(curves.locator(".g-xtitle")).to_have_text("training step", timeout=wait_ms)

            def choose(label: str) -> None:
                page.locator("button").filter(has_text=re.compile(f"^{label}$")).first.click()  # a segmented control

            choose("epoch")
            expect(curves.locator(".g-xtitle")).to_have_text("epochs trained", timeout=wait_ms)
            choose("time")
            since = re.compile(r"time since the run's first point \((s|min)\)")
            expect(curves.locator(".g-xtitle")).to_have_text(since, timeout=wait_ms)
            choose("svg")
            curves.hover()
            with page.expect_download() as saved:
                curves.locator('.modebar-btn[data-title="Download plot"]').click()
            assert saved.value.suggested_filename == "autotag-curves.svg"
            with page.expect_download() as table:
                page.get_by_role("button", name="Download the curves (CSV)").click()
            lines = Path(table.value.path()).read_text().splitlines()
            assert lines[0] == "run,tag,step,epoch,seconds,value" and len(lines) > 100
            page.locator("summary", has_text="Validation ROC-AUC of each tag").click()
            per_tag = page.locator(".js-plotly-plot").nth(1)
            expect(per_tag.locator(".legendtext").first).to_be_visible(timeout=wait_ms)
            labels = json.loads((run / "labels.json").read_text())
            shown = [t.split(" (")[0] for t in per_tag.locator(".legendtext").all_text_contents()]  # SVG: no inner text
            assert shown and set(shown) <= set(labels)
            page.screenshot(path=str(tmp_path / "charts.png"), full_page=True)
            browser.close()
    finally:
        _stop(server)


_CLOCK_APP = """
import streamlit as st
from autotag.ui.ticker import refresh_clock

st.button("Rerun the page", key="whole")


@st.fragment
def part() -> None:
    st.session_state["runs"] = st.session_state.get("runs", 0) + 1
    st.write(f"part runs: {st.session_state['runs']}")
    refresh_clock("clock", 1.0)


part()
"""


def test_a_refresh_clock_redrawn_many_times_still_ticks_once_an_interval(tmp_path: Path) -> None:
    """Streamlit runs a component's script again on each new `data` but ends the previous
    run's timer only on unmount: five whole-page reruns left six timers, and the part then
    reran six times an interval, forever. The clock ends its previous timer itself."""
    from playwright.sync_api import expect, sync_playwright

    app = tmp_path / "clock_app.py"
    app.write_text(_CLOCK_APP)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server, url = _serve([sys.executable, "-m", "streamlit", "run", str(app)], tmp_path, env, tmp_path / "clock.log")
    try:
        with sync_playwright() as pw:
            browser = _browser(pw)
            page = browser.new_page()
            page.goto(url)
            button = page.get_by_role("button", name="Rerun the page")
            for _ in range(5):  # a whole-page rerun each: the clock drawn anew with new data
                button.click()
                page.wait_for_timeout(300)
            counted = page.get_by_text(re.compile(r"^part runs: \d+$"))
            expect(counted).to_be_visible(timeout=30_000)
            before = int(counted.inner_text().split()[-1])
            page.wait_for_timeout(6_000)  # six intervals of 1 s
            ticks = int(counted.inner_text().split()[-1]) - before
            browser.close()
    finally:
        _stop(server)
    assert 2 <= ticks <= 9, f"{ticks} reruns of the part in 6 s at one a second (six timers made 24)"
