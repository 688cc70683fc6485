"""The dashboard with login configured: logged out, viewer, trainer and admin on every page.

`AppTest.secrets` gives the pages an `[auth]` section and roles, `AppTest.user` the
person logged in. Allowed and refused actions are checked against the runs folder and
the audit log, including clicks on buttons the page had disabled (a forged request).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from autotag.access import read_log
from autotag.config import make_config
from autotag.runs import manager
from autotag.store.run_folder import RunFolder, create_run, default_runs_dir
from autotag.ui.live import MIN_INTERVAL_S, LiveRuns, Snapshot

APP = str(Path(__file__).parents[2] / "app.py")
PAGES = ["pages/train.py", "pages/runs.py", "pages/sweep.py", "pages/tag.py", "pages/library.py", "pages/data.py"]
SECRETS = {
    "auth": {
        "redirect_uri": "http://localhost:8501/oauth2callback",
        "cookie_secret": "a-test-cookie-secret",
        "client_id": "autotag",
        "client_secret": "not-a-secret",
        "server_metadata_url": "http://127.0.0.1:9/.well-known/openid-configuration",
    },
    "autotag": {
        "roles": {"admins": ["ada@example.org"], "trainers": ["tom@example.org", "tina@example.org"], "viewers": ["*"]}
    },
}


def _as(email: str | None, page: str = "pages/runs.py") -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.secrets = SECRETS
    at.user = {"is_logged_in": False} if email is None else {"is_logged_in": True, "email": email}
    at.run()
    if page != "pages/train.py":
        at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.fixture
def owned_run(trained_run: Path) -> Path:
    """A finished run launched by tom@example.org, in this test's runs folder."""
    dest = default_runs_dir() / trained_run.name
    shutil.copytree(trained_run, dest)
    RunFolder(dest).write_status(owner="tom@example.org")
    return dest


def _refusals() -> list[tuple[str, str]]:
    return [(e["who"], e["action"]) for e in read_log(default_runs_dir()) if e["outcome"] == "refused"]


@pytest.mark.parametrize("page", PAGES)
def test_logged_out_every_page_shows_only_a_login_button(page: str, demo_dataset: Path) -> None:
    at = _as(None, page)
    assert [b.key for b in at.button] == ["auth_login"]
    assert [t.value for t in at.title] == ["autotag"] and not at.get("plotly_chart") and not at.dataframe


LAUNCH_BUTTONS = {
    "pages/train.py": "train_launch",
    "pages/runs.py": "runs_quick_demo",
    "pages/sweep.py": "sweep_launch",
}


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize(
    ("email", "role"), [("vic@example.org", "viewer"), ("tom@example.org", "trainer"), ("ada@example.org", "admin")]
)
def test_every_role_sees_every_page_and_only_a_viewer_may_not_launch(
    page: str, email: str, role: str, demo_dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTOTAG_DEMO_DIR", str(demo_dataset))
    at = _as(email, page)
    assert at.title and at.title[0].value != "autotag"  # the page itself, not the login
    if page == "pages/train.py":  # (AppTest keeps the main script's sidebar on its first page only)
        assert any(email in c.value and f"({role})" in c.value for c in at.sidebar.caption)
    if page in LAUNCH_BUTTONS and page != "pages/sweep.py":  # the Sweep page also needs a field to search
        assert at.button(key=LAUNCH_BUTTONS[page]).disabled is (role == "viewer")
    if page == "pages/sweep.py" and role == "viewer":
        assert at.button(key="sweep_launch").disabled


DEMOTED = {**SECRETS, "autotag": {"roles": {"admins": ["ada@example.org"], "viewers": ["*"]}}}


def test_a_launch_clicked_on_a_page_drawn_before_a_demotion_launches_nothing(
    demo_dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The button was enabled when the page was drawn; the click arrives after an admin took
    tom off the trainers. The rerun that carries the click draws the button disabled, and
    Streamlit drops clicks on disabled buttons: nothing is launched, the button says why.
    (The library refuses too: tests/test_access.py, and the delete below.)"""
    monkeypatch.setenv("AUTOTAG_DEMO_DIR", str(demo_dataset))
    at = _as("tom@example.org", "pages/train.py")
    assert not at.button(key="train_launch").disabled
    at.secrets = DEMOTED
    at.button(key="train_launch").click().run()
    assert manager.list_runs() == []
    assert at.button(key="train_launch").disabled and "viewers may look" in at.button(key="train_launch").help


@pytest.mark.slow
def test_a_viewer_cannot_delete_and_a_trainer_deletes_only_their_own(owned_run: Path) -> None:
    viewer = _as("vic@example.org")
    assert viewer.button(key="runs_delete").disabled and viewer.button(key="runs_export").disabled

    stale = _as("tom@example.org")  # his page, drawn while he was a trainer
    stale.button(key="runs_delete").click().run()
    stale.secrets = DEMOTED
    stale.button(key="runs_delete_yes").click().run()
    assert owned_run.is_dir() and any("may not delete" in e.value for e in stale.error)

    other = _as("tina@example.org")
    assert other.button(key="runs_delete").disabled
    assert any("Launched by tom@example.org" in c.value for c in other.caption)
    other.segmented_control(key="runs_whose").set_value("mine").run()
    assert any("None of the runs is yours" in i.value for i in other.info)

    owner = _as("tom@example.org")
    assert not owner.button(key="runs_delete").disabled
    owner.button(key="runs_delete").click().run()
    owner.button(key="runs_delete_yes").click().run()
    assert not owned_run.exists()
    assert ("tom@example.org", "delete") in _refusals()
    assert any(e["who"] == "tom@example.org" and e["action"] == "delete" for e in read_log(default_runs_dir()))


def _finished(name: str, owner: str) -> Path:
    """A finished run of `owner` (no trainer ran: the Runs page only reads it)."""
    run = create_run(make_config(data=str(default_runs_dir()), model="tiny"), default_runs_dir(), name)
    now = time.time()
    RunFolder(run).write_status(state="completed", epoch=2, max_epochs=2, started=now - 60, ended=now, owner=owner)
    return run


def test_mine_lists_ones_own_runs_and_reruns_the_page_for_them_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """With "mine", the Runs page's live part reruns the whole page when one of the user's
    runs appears or ends, and not for another user's (it compared every run in the folder
    with hers, so another user's run made it rerun the page without end). Each change below
    happens between the page's own listing and its live part's, as a run started elsewhere
    does while the page is drawn or between two refreshes."""
    hers = _finished("hers", "tina@example.org")
    his = _finished("his", "tom@example.org")
    changes: list[Callable[[], object]] = []  # made once the page has listed the runs
    listing = LiveRuns.snapshot

    def snapshot(self: LiveRuns, max_age: float = MIN_INTERVAL_S) -> Snapshot:
        listed = listing(self, 0)  # read now: the live part sees the change the page missed
        while max_age == 0 and changes:  # max_age=0: the page's own listing, as a whole run starts
            changes.pop(0)()
        return listed

    monkeypatch.setattr(LiveRuns, "snapshot", snapshot)
    page_runs = []
    schedule = manager.schedule
    monkeypatch.setattr(manager, "schedule", lambda runs_dir=None: page_runs.append(1) or schedule(runs_dir))

    def runs_of_the_page(change: Callable[[], object] | None = None) -> int:
        """How many times the page ran for one rerun of it (its live part's st.rerun() adds one)."""
        changes.extend([change] if change else [])
        page_runs.clear()
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        return len(page_runs)

    at = _as("tina@example.org")
    at.multiselect(key="runs_pick").set_value([his.name]).run()  # on "all", tom's run picked
    at.segmented_control(key="runs_whose").set_value("mine")
    assert runs_of_the_page() == 1  # tom's run is in the folder, unlisted: no rerun
    assert at.multiselect(key="runs_pick").options == [hers.name]
    assert at.multiselect(key="runs_pick").value == [hers.name]  # not an empty picker: her run instead
    assert list(at.dataframe[0].value["run"]) == [hers.name]  # the table too
    assert runs_of_the_page(lambda: _finished("his-too", "tom@example.org")) == 1
    assert runs_of_the_page(lambda: RunFolder(his).write_status(state="failed", error="his")) == 1
    assert at.multiselect(key="runs_pick").options == [hers.name]

    new = []
    assert runs_of_the_page(lambda: new.append(_finished("hers-too", "tina@example.org"))) == 2  # then listed
    assert sorted(at.multiselect(key="runs_pick").options) == sorted([hers.name, new[0].name])
    assert runs_of_the_page(lambda: RunFolder(hers).write_status(state="failed", error="hers")) == 2
    at.segmented_control(key="runs_whose").set_value("all")  # every run listed: another user's counts
    assert runs_of_the_page(lambda: _finished("his-third", "tom@example.org")) == 2
    assert len(at.multiselect(key="runs_pick").options) == 5
    assert len(at.dataframe[0].value) == 5


@pytest.mark.slow
def test_an_admin_deletes_any_run_and_reads_the_audit_log(owned_run: Path) -> None:
    at = _as("ada@example.org")
    assert "Audit log (newest first)" in [e.label for e in at.expander]
    at.button(key="runs_delete").click().run()
    at.button(key="runs_delete_yes").click().run()
    assert not owned_run.exists()
    trainer = _as("tom@example.org")
    assert "Audit log (newest first)" not in [e.label for e in trainer.expander]


def test_someone_with_no_role_is_told_so(demo_dataset: Path) -> None:
    at = AppTest.from_file(APP, default_timeout=60)
    at.secrets = {**SECRETS, "autotag": {"roles": {"admins": ["ada@example.org"]}}}
    at.user = {"is_logged_in": True, "email": "eve@example.org"}
    at.run()
    assert "eve@example.org, who has no role" in at.error[0].value
    assert [b.key for b in at.button] == ["auth_logout"]
    assert ("eve@example.org", "login") in _refusals()


def test_an_unverified_e_mail_gets_no_role(demo_dataset: Path) -> None:
    at = AppTest.from_file(APP, default_timeout=60)
    at.secrets = SECRETS
    at.user = {"is_logged_in": True, "email": "ada@example.org", "email_verified": False}  # claims the admin's
    at.run()
    assert "ada@example.org is not verified" in at.error[0].value
    assert [b.key for b in at.button] == ["auth_logout"]
    refused = [e for e in read_log(default_runs_dir()) if e["outcome"] == "refused"]
    assert refused[0]["role"] == "none" and "did not verify" in refused[0]["why"]


def test_a_box_that_requires_login_stays_closed_without_an_auth_section(
    demo_dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTOTAG_REQUIRE_LOGIN", "1")
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()  # no secrets at all: without the variable, a laptop's unrestricted dashboard
    assert "AUTOTAG_REQUIRE_LOGIN is set but no [auth] section" in at.error[0].value
    assert not at.button and [t.value for t in at.title] == []
