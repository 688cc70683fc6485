"""What ships: the effective Streamlit options and a Dockerfile in step with the project."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_effective_streamlit_options() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "streamlit", "config", "show"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    effective = {
        line.split(" = ")[0]: line.split(" = ")[1]
        for line in out.splitlines()
        if " = " in line and not line.startswith("#")
    }
    assert effective["enableXsrfProtection"] == "true"
    assert effective["maxUploadSize"] == "100"
    assert effective["showErrorDetails"] == '"none"'
    assert effective["gatherUsageStats"] == "false"
    assert effective["fileWatcherType"] == '"none"'
    assert effective["enableCORS"] == "true"
    assert effective["enableStaticServing"] == "false"
    hidden = subprocess.run(  # `config show` leaves out Streamlit's hidden options
        [sys.executable, "-c", "from streamlit import config; print(config.get_option('runner.postScriptGC'))"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert hidden.strip() == "False"  # a full collection after every fragment rerun: see the config file


def test_dockerfile_ships_what_the_dashboard_needs() -> None:
    text = (ROOT / "Dockerfile").read_text()
    for needed in (
        "COPY requirements.txt",
        "COPY autotag/",
        "COPY pages/",
        "app.py",
        "COPY .streamlit/",
        "EXPOSE 8501",
        "/_stcore/health",
        "AUTOTAG_RUNS_DIR=/data/runs",
        'VOLUME ["/data"]',
        "libfluidsynth3 fluid-soundfont-gm timgm6mb-soundfont",  # the demo set's instruments
    ):
        assert needed in text, needed
    user = [line for line in text.splitlines() if line.startswith("USER ")]
    assert user and user[-1] != "USER root"
    entry = (ROOT / "scripts" / "docker-entrypoint.sh").read_text()
    assert "--server.address 0.0.0.0" in entry and "demo-data" in entry
    assert "EXPOSE 8501 8000" in text  # the dashboard, and `autotag serve`


def test_the_images_entrypoint_runs_an_autotag_command_instead_of_the_dashboard(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env["AUTOTAG_DEMO_DIR"] = str(tmp_path / "demo")  # not made: a command needs no demo set
    done = subprocess.run(
        ["sh", str(ROOT / "scripts" / "docker-entrypoint.sh"), "autotag", "serve", "--help"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and "--token-file" in done.stdout and not (tmp_path / "demo").exists()
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignored and "runs" in ignored
