"""ruff (pinned in requirements-dev.txt) keeps the code base in one style and free of dead imports;
import-linter keeps the layers of docs/architecture.md (the contract in pyproject.toml)."""

import subprocess
import sys
import tomllib
from pathlib import Path

import grimp

ROOT = Path(__file__).parent.parent


def test_ruff_finds_nothing() -> None:
    targets = ["autotag", "tests", "benchmarks", "pages", "app.py"]
    done = subprocess.run([sys.executable, "-m", "ruff", "check", *targets], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_no_module_imports_from_a_layer_above_its_own() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def test_every_module_has_a_layer() -> None:
    """A module the contract does not name is not checked: a new one must take its place."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    layers = next(c["layers"] for c in config if c["type"] == "layers")
    named = [m.strip() for layer in layers for m in layer.replace("|", ":").split(":")]
    graph = grimp.build_graph("autotag")
    unplaced = [
        m
        for m in sorted(graph.modules)
        if m not in ("autotag", "autotag.__main__", "autotag.runs")
        and not any(m == n or m.startswith(n + ".") for n in named)
    ]
    assert not unplaced, f"name these in pyproject.toml's layers contract: {unplaced}"


def test_no_import_circles() -> None:
    """Not even through an import inside a function: only imports made for type checkers are left out."""
    graph = grimp.build_graph("autotag", exclude_type_checking_imports=True)
    circles = sorted(
        {
            tuple(sorted((importer, imported)))
            for importer in graph.modules
            for imported in graph.find_modules_directly_imported_by(importer)
            if graph.find_shortest_chain(importer=imported, imported=importer)
        }
    )
    assert not circles, circles
