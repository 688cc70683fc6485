"""One base for the errors of bad input: every entry point handles a new kind without a list by hand."""

import importlib
import pkgutil

import pytest

import autotag
from autotag.cli.main import main
from autotag.errors import AutotagError

#: Exceptions autotag defines that are not bad input, and why.
NOT_BAD_INPUT = {
    "AccessDenied": "a role's permission (PermissionError); pages and the CLI say who may do what",
    "SecretsError": "the dashboard's own secrets file is unreadable: the server's set-up, not a user's input",
    "SweepFailed": "a sweep whose trials keep failing ends as failed, with the reason in its status",
    "SweepStopped": "control flow: Stop was asked for",
    "RunStopped": "control flow: Stop was asked for",
    "_TooDeep": "control flow inside the config reader, which raises ConfigError",
    "EstimateError": "this machine could not time training steps: the Train page shows it instead of an estimate",
    "_TooLarge": "control flow inside serve's body limit, which answers 413",
}


def _defined_exceptions() -> dict[str, type]:
    found = {}
    for info in pkgutil.walk_packages(autotag.__path__, "autotag."):
        if info.name == "autotag.__main__":  # importing it would run the CLI
            continue
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if isinstance(obj, type) and issubclass(obj, BaseException) and obj.__module__ == module.__name__:
                found[f"{info.name}.{name}"] = obj
    return found


def test_every_error_of_bad_input_shares_one_base() -> None:
    found = _defined_exceptions()
    assert len(found) > 10, found
    stray = [q for q, e in found.items() if not issubclass(e, AutotagError) and e.__name__ not in NOT_BAD_INPUT]
    assert not stray, f"raise bad input as an AutotagError (autotag/errors.py) or say why not in NOT_BAD_INPUT: {stray}"
    assert all(any(e.__name__ == name for e in found.values()) for name in NOT_BAD_INPUT), "a stale NOT_BAD_INPUT"


def test_the_cli_reports_any_of_them_in_one_line_with_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class NewKind(AutotagError):
        """A kind of bad input the CLI has never heard of."""

    def refuse(*_: object, **__: object) -> None:
        raise NewKind("the clip is a teapot")

    monkeypatch.setattr("autotag.cli.main.load_config", refuse)
    assert main(["fit", "--config", "config.yaml"]) == 2
    assert capsys.readouterr().err == "autotag: error: the clip is a teapot\n"
