"""The dashboard entry page renders, empty and with a run, without importing torch."""

import subprocess
import sys
from pathlib import Path

from streamlit.testing.v1 import AppTest

from autotag.config import make_config
from autotag.runs import create_run, write_status

APP = str(Path(__file__).parent.parent / "app.py")


def test_home_page_empty_and_with_a_run(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("AUTOTAG_DEMO_DIR", str(tmp_path / "nodemo"))
    at = AppTest.from_file(APP).run(timeout=30)
    assert not at.exception
    assert any("No runs yet" in i.value for i in at.info)
    assert any("No demo data set" in w.value for w in at.warning)

    run = create_run(make_config(data=str(tmp_path), model="tiny"))
    write_status(run, state="completed", best_val_loss=0.31)
    at = AppTest.from_file(APP).run(timeout=30)
    assert not at.exception
    table = at.dataframe[0].value
    assert table["run"].tolist() == [run.name] and table["state"].tolist() == ["completed"]


def test_dashboard_start_does_not_import_torch() -> None:
    code = "import runpy, sys; import autotag.runs, autotag.config; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
