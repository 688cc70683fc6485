"""docs/architecture.md states the package as it is, and the tests follow its layout.

The doc's folder tree names every module and only those; every module has its test module
(`tests/<package>/test_<module>.py`) unless it is named below with the tests that drive it.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"

#: Modules without a test module of their own: why, and the test module that drives them.
TESTED_ELSEWHERE = {
    "audio/process.py": ("the decoder process's entry point", "tests/audio/test_sandbox.py"),
    "cli/pretrained.py": ("`pretrained ...`: a parser and calls", "tests/pretrained/test_importer.py"),
    "cli/robustness.py": ("`robustness ...`: a parser and calls", "tests/robustness/test_report.py"),
    "cli/sweep.py": ("`sweep ...`: a parser and calls", "tests/sweeps/test_manager.py"),
    "data/prepare.py": ("the data set, checked, into the feature cache", "tests/data/test_datamodule.py"),
    "digests.py": ("hashlib over a file", "tests/pretrained/test_fetch.py"),
    "logs.py": ("logging's set-up", "tests/cli/test_main.py"),
    "models/specs.py": ("a table of the papers' inputs", "tests/models/test_architectures.py"),
    "pretrained/catalogue.py": ("a table of the published taggers", "tests/pretrained/test_weights.py"),
    "robustness/job.py": ("the report's files and process", "tests/robustness/test_report.py"),
    "robustness/process.py": ("the report process's entry point", "tests/robustness/test_report.py"),
    "library/background.py": ("the library job process's entry point", "tests/library/test_job.py"),
    "runs/process.py": ("the trainer processes' entry points", "tests/runs/test_manager.py"),
    "ui/library_job.py": ("the Library page's background tagging", "tests/test_app.py"),
    "ui/robustness.py": ("the Runs page's report section", "tests/test_app.py"),
    "ui/ticker.py": ("the live pages' clock, a browser component", "tests/test_browser.py"),
}


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


def _test_module(module: str) -> Path:
    package, _, name = module.rpartition("/")
    return ROOT / "tests" / package / f"test_{name}"


def test_every_module_has_its_test_module_or_says_which_tests_drive_it() -> None:
    lacking = sorted(m for m in _package_modules() if not _test_module(m).exists())
    unexplained = [m for m in lacking if m not in TESTED_ELSEWHERE]
    assert not unexplained, f"modules without tests/<package>/test_<module>.py: {unexplained}"
    stale = sorted(set(TESTED_ELSEWHERE) - set(lacking))
    assert not stale, f"TESTED_ELSEWHERE names modules that have their own test module, or none: {stale}"
    missing = [where for _, where in TESTED_ELSEWHERE.values() if not (ROOT / where).is_file()]
    assert not missing, missing
