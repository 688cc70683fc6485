"""docs/architecture.md states the package as it is: its folder tree names every module, and only those."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"


def _documented_modules() -> set[str]:
    """`package/module.py` for each module the doc's tree names under `autotag/`."""
    text = DOC.read_text(encoding="utf-8")
    tree = text.split("## The folder tree is the map", 1)[1].split("```")[1]
    lines = tree.split("autotag/\n", 1)[1].splitlines()
    modules, package = set(), ""
    for line in lines:
        head = re.match(r"  (\w+)(/|\.py)\s", line)
        if head:  # a line that starts a package (`  store/ ...`) or names a top-level module
            package = f"{head[1]}/" if head[2] == "/" else ""
            if head[2] == ".py":
                modules.add(f"{head[1]}.py")
                continue
        modules.update(f"{package}{name}" for name in re.findall(r"\b(\w+\.py)\b", line))
    return modules


def _package_modules() -> set[str]:
    package = ROOT / "autotag"
    return {
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if path.name not in ("__init__.py", "__main__.py")
    }


def test_the_folder_tree_names_every_module_and_no_other() -> None:
    documented, actual = _documented_modules(), _package_modules()
    assert not actual - documented, f"modules docs/architecture.md does not name: {sorted(actual - documented)}"
    assert not documented - actual, f"docs/architecture.md names missing modules: {sorted(documented - actual)}"


def test_the_doc_names_only_modules_that_exist() -> None:
    """A dotted module path in the text (`store.job.StatusFile`, `runs.manager.launch`) names a real module."""
    text = DOC.read_text(encoding="utf-8")
    packages = {p.name for p in (ROOT / "autotag").iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    missing = sorted(
        {
            f"{package}.{module}"
            for package, module in re.findall(r"`(\w+)\.(\w+)[.`]", text)
            if package in packages
            and not (ROOT / "autotag" / package / f"{module}.py").exists()
            and not (ROOT / "autotag" / package / module).is_dir()
        }
    )
    assert not missing, f"docs/architecture.md names modules that do not exist: {missing}"
