"""The dashboard server as a viewer who forges clicks sees it (login configured, AppTest).

Two layers stand between a viewer and an action, and each is checked here as it is:
- a click on a button the page drew disabled never reaches autotag: Streamlit drops it
  before the script runs, so nothing changes, and there is nothing to show or log;
- a click that does reach a library function from a role that may not act (the button was
  drawn enabled before an admin changed the roles) is refused by that function, shown on
  the page and logged as refused (`autotag.access`).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from autotag.access import read_log
from autotag.config import make_config
from autotag.runs import manager
from autotag.store.run_folder import RunFolder, create_run, default_runs_dir
from autotag.ui import auth
from tests.ui.test_auth import APP, DEMOTED, SECRETS


@pytest.fixture(autouse=True)
def _a_new_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """A server logs each login once (`auth._RECORDED`); each test here is a new server."""
    monkeypatch.setattr(auth, "_RECORDED", set())


def _page(email: str, page: str, secrets: dict = SECRETS) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.secrets = secrets
    at.user = {"is_logged_in": True, "email": email}
    at.run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _forge_click(at: AppTest, key: str) -> None:
    """Send the trigger of a button the page drew disabled, as a hand-made websocket message would.

    AppTest refuses `click()` on a disabled button (a browser cannot click one); a forged
    request can still carry the trigger, so it is set on the widget's state directly.
    """
    button = at.button(key=key)
    assert button.disabled
    button._value = True  # what click() sets, without AppTest's browser-side refusal
    at.run()


def _run_owned_by(owner: str, data: Path) -> Path:
    run = create_run(make_config(data=str(data), model="tiny"))
    RunFolder(run).write_status(state="completed", owner=owner)
    return run


def test_a_forged_click_on_a_disabled_button_changes_nothing(tmp_path: Path) -> None:
    viewer = _page("vic@example.org", "pages/runs.py")
    _forge_click(viewer, "runs_quick_demo")
    assert manager.list_runs() == [] and not viewer.exception
    assert [e["action"] for e in read_log(default_runs_dir())] == ["login"]  # dropped before autotag ran

    run = _run_owned_by("tom@example.org", tmp_path)
    viewer = _page("vic@example.org", "pages/runs.py")
    _forge_click(viewer, "runs_delete")
    assert not viewer.warning  # no "Delete ...?" confirmation was drawn
    assert run.is_dir() and not any(e["action"] == "delete" for e in read_log(default_runs_dir()))


def test_a_click_that_reaches_the_library_is_refused_shown_and_logged(tmp_path: Path) -> None:
    run = _run_owned_by("tom@example.org", tmp_path)
    page = _page("tom@example.org", "pages/runs.py")  # drawn while tom was a trainer
    page.button(key="runs_delete").click().run()
    page.secrets = DEMOTED  # an admin takes tom off the trainers; his open page still shows the confirmation
    page.button(key="runs_delete_yes").click().run()
    assert run.is_dir()
    assert any("may not delete" in e.value for e in page.error)
    refused = [e for e in read_log(default_runs_dir()) if e["outcome"] == "refused"]
    assert [(e["who"], e["action"], e["target"]) for e in refused] == [("tom@example.org", "delete", run.name)]
