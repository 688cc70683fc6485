"""Login in a real browser against a local OpenID Connect provider (tests/oidc_mock.py).

The dashboard runs with an `[auth]` section whose provider is the mock on loopback:
log in as a trainer, launch the quick demo (the run is theirs), log out; then a token
from the wrong issuer, an expired token and a tampered session cookie all leave the
browser logged out. No request leaves 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from autotag.access import read_log
from autotag.runs import manager
from tests.conftest import stop_trainers, wait_until
from tests.oidc_mock import CLIENT_ID, CLIENT_SECRET, MockProvider
from tests.test_browser import CHROMIUM, ROOT, _browser, _free_port, _stop

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (scripts/setup.sh --dev)"
    ),
]


@pytest.fixture
def provider() -> Iterator[MockProvider]:
    mock = MockProvider()
    yield mock
    mock.close()


@pytest.fixture
def dashboard(provider: MockProvider, demo_dataset: Path, tmp_path: Path) -> Iterator[str]:
    """The dashboard with login through the mock provider and three roles."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    secrets_file = tmp_path / "secrets.toml"
    secrets_file.write_text(
        f"""[auth]
redirect_uri = "{url}/oauth2callback"
cookie_secret = "{secrets.token_hex(16)}"
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"
server_metadata_url = "{provider.issuer}/.well-known/openid-configuration"

[autotag.roles]
admins = ["ada@example.org"]
trainers = ["tom@example.org"]
viewers = ["*"]
"""
    )
    env = {
        **os.environ,
        "AUTOTAG_DEMO_DIR": str(demo_dataset),
        "AUTOTAG_RUNS_DIR": str(tmp_path / "runs"),
        "AUTOTAG_CACHE_DIR": str(tmp_path / "cache"),
        "AUTOTAG_WARM": "0",
    }
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true"]
    cmd += ["--server.address", "127.0.0.1", "--server.port", str(port), "--secrets.files", str(secrets_file)]
    log = tmp_path / "streamlit.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, log.read_text()
                time.sleep(0.3)
        yield url
    finally:
        _stop(proc)
        stop_trainers(tmp_path / "runs")


def _log_in(page, provider: MockProvider, url: str, email: str) -> None:  # noqa: ANN001 - a playwright page
    from playwright.sync_api import expect

    provider.next_email = email
    page.goto(f"{url}/runs")
    # The page's own timeout, not expect's 5 s: a busy 2-core machine drew the sidebar first and
    # this line after more than 5 s (CI beside two benchmarks).
    expect(page.get_by_text("log in to see its runs")).to_be_visible(timeout=60_000)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{url}/")  # Streamlit lands on the first page after the provider's redirect
    page.goto(f"{url}/runs")


def test_login_launch_logout_and_refused_tokens(dashboard: str, provider: MockProvider, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    runs_dir = tmp_path / "runs"
    with sync_playwright() as pw:
        browser = _browser(pw)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(60_000)

        _log_in(page, provider, dashboard, "tom@example.org")
        expect(page.get_by_text("tom@example.org")).to_be_visible()
        expect(page.get_by_text("(trainer)")).to_be_visible()
        page.get_by_role("button", name="Start the quick demo").click()
        expect(page.get_by_text("Launched by tom@example.org")).to_be_visible()
        page.screenshot(path=str(tmp_path / "1_launched.png"))
        runs = manager.list_runs(runs_dir)
        assert len(runs) == 1 and runs[0].status.owner == "tom@example.org"
        manager.stop(runs[0].path)  # the launch is what this test checks, not the training

        cookies = {c["name"]: c for c in context.cookies()}
        assert "_streamlit_user" in cookies
        page.get_by_role("button", name="Log out").click()
        expect(page.get_by_role("button", name="Log in")).to_be_visible()
        # The page shows "Log in" as soon as the server forgets the user, before the browser has
        # gone through /auth/logout, which ends the cookie: a page opened before that was still
        # logged in (a CI run).
        wait_until(
            "the logout to end its cookie", lambda: "_streamlit_user" not in {c["name"] for c in context.cookies()}
        )

        for mode in ("wrong_issuer", "expired"):
            provider.mode = mode
            _log_in(page, provider, dashboard, "tom@example.org")
            expect(page.get_by_role("button", name="Log in")).to_be_visible()  # still logged out
            assert "_streamlit_user" not in {c["name"] for c in context.cookies()}, mode
        provider.mode = "ok"

        _log_in(page, provider, dashboard, "ada@example.org")
        expect(page.get_by_text("(admin)")).to_be_visible()
        user = next(c for c in context.cookies() if c["name"] == "_streamlit_user")
        tampered = user["value"][:-2] + ("AA" if not user["value"].endswith("AA") else "BB")  # its signature
        context.add_cookies([{**user, "value": tampered}])
        page.goto(f"{dashboard}/runs")
        expect(page.get_by_role("button", name="Log in")).to_be_visible()
        page.screenshot(path=str(tmp_path / "2_tampered.png"))
        browser.close()

    server_log = (tmp_path / "streamlit.log").read_text()  # refused for the right reasons
    assert "Invalid claim: 'iss'" in server_log and "The token is expired" in server_log
    log = read_log(runs_dir)
    logins = [(e["who"], e["outcome"]) for e in log if e["action"] == "login"]
    assert ("tom@example.org", "ok") in logins and ("ada@example.org", "ok") in logins
    assert [e["who"] for e in log if e["action"] == "launch"] == ["tom@example.org"]
    assert json.dumps(log)  # one object per line, all of them JSON
