"""ruff (pinned in requirements-dev.txt) keeps the code base in one style and free of dead imports."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_ruff_finds_nothing() -> None:
    targets = ["autotag", "tests", "benchmarks", "pages", "app.py"]
    done = subprocess.run([sys.executable, "-m", "ruff", "check", *targets], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
