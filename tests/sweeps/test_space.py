"""Search spaces: what the schema allows, conditions, and bad spaces refused with exit 2."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from autotag.cli.main import main
from autotag.config import ConfigError, make_config
from autotag.sweeps.space import SpaceError, check_space, config_reason, parse_point, parse_space


def test_ranges_and_choices_take_the_schemas_types() -> None:
    space = parse_space(["lr=1e-4:1e-1:log", "batch_size=8:64", "model=tiny,fcn", "mixup=0,0.2"], {})
    kinds = {p.field: (p.kind, p.low, p.high, p.log, p.choices) for p in space.params}
    assert kinds["lr"] == ("float", 1e-4, 0.1, True, ())
    assert kinds["batch_size"] == ("int", 8, 64, False, ())
    assert kinds["model"][0] == "choice" and kinds["model"][4] == ("tiny", "fcn")
    assert kinds["mixup"][4] == (0.0, 0.2)
    assert space.texts == ["lr=0.0001:0.1:log", "batch_size=8:64", "model=tiny,fcn", "mixup=0.0,0.2"]
    assert parse_space(space.texts, {}) == space  # sweep.yaml keeps the texts; they read back the same


def test_a_conditional_field_is_searched_only_when_its_parent_has_the_value() -> None:
    # The condition comes first in the list, its parent second: parents are sampled first anyway.
    space = parse_space(["batch_size=8:64@model=tiny", "model=tiny,fcn"], {})
    assert [p.field for p in space.params] == ["model", "batch_size"]
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = []
    for _ in range(20):
        trial = study.ask()
        values = space.sample(trial)
        seen.append(values)
        study.tell(trial, 0.0)
    assert all(("batch_size" in v) == (v["model"] == "tiny") for v in seen)
    assert {v["model"] for v in seen} == {"tiny", "fcn"}


def test_a_condition_on_a_fixed_field_that_it_meets_is_searched_in_every_trial() -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for fixed in ({"model": "tiny"}, {}):  # fixed, or the field's default (shortchunk_cnn)
        model = fixed.get("model", "shortchunk_cnn")
        space = parse_space([f"batch_size=8:64@model={model}"], fixed)
        assert "batch_size" in space.sample(study.ask())
        assert parse_space(space.texts, fixed) == space


@pytest.mark.parametrize(
    ("entries", "fixed", "message"),
    [
        ([], {}, "at least one searched field"),
        (["lr"], {}, "FIELD=lo:hi"),
        (["nope=1:2"], {}, "no config field 'nope'"),
        (["data=a,b"], {}, "same for every trial"),
        (["lr=0:1:log"], {}, "greater than 0"),
        (["lr=2:3"], {}, "less than or equal to 1"),
        (["lr=0.1:0.01"], {}, "lo must be below hi"),
        (["lr=1e-3"], {}, "one value is not a search"),
        (["batch_size=1.5:8"], {}, "valid integer"),
        (["model=tiny:fcn"], {}, "not a number"),
        (["model=tiny,foo"], {}, "unknown model 'foo'"),
        (["mixup=0,,0.2"], {}, "an empty value"),
        (["accelerator=cpu,cpu"], {}, "cpu listed twice"),
        (["lr=1e-4:1e-2", "lr=1e-3,1e-2"], {}, "searched twice"),
        (["lr=1e-4:1e-2"], {"lr": 1e-3}, "both fixed"),
        (["batch_size=8:64@model=tiny"], {}, "would never be searched"),
        (["batch_size=8:64@model=tiny"], {"model": "fcn"}, "would never be searched"),
        (["batch_size=8:64@model=fcn", "model=tiny,shortchunk_cnn"], {}, "never fcn"),
        (["batch_size=8:64@lr=0.1", "lr=0.01:0.2"], {}, "searched as choices"),
    ],
)
def test_bad_spaces_are_refused_with_one_message(entries: list[str], fixed: dict, message: str) -> None:
    with pytest.raises(SpaceError, match=message):
        parse_space(entries, fixed)


def test_combinations_are_checked_against_the_schema_with_the_fixed_fields() -> None:
    fixed = {"data": "/d"}
    assert check_space(parse_space(["lr=1e-4:1e-1:log", "model=tiny,fcn"], {}), fixed) is None
    with pytest.raises(SpaceError) as refused:  # each value allowed alone, none together
        check_space(parse_space(["n_fft=64:128", "hop_length=200:4096"], {}), fixed)
    assert str(refused.value) == (
        "no combination of the space makes a valid config (304 checked), "
        "e.g. n_fft=64, hop_length=200 (hop_length 200 must not exceed n_fft 64)"
    )
    # the fixed fields take part
    assert check_space(parse_space(["hop_length=100:200"], {}), {**fixed, "n_fft": 256}) is None
    with pytest.raises(SpaceError, match=r"e\.g\. hop_length=200 \(hop_length 200 must not exceed n_fft 128\)$"):
        check_space(parse_space(["hop_length=200:300"], {}), {**fixed, "n_fft": 128})


def test_a_partly_invalid_space_is_described_by_its_share_and_an_example() -> None:
    # tiny has 64 mel bands, so a mask over 32 is invalid; fcn trials do not search the mask
    space = parse_space(["freq_mask=20:60@model=tiny", "model=tiny,fcn"], {})
    note = check_space(space, {"data": "/d"})
    assert note is not None and note == check_space(space, {"data": "/d"})  # seeded: the same every time
    assert "are not valid configs, e.g. model=tiny, freq_mask=60 (freq_mask 60 would mask more than half" in note
    invalid, checked = (int(n) for n in note.split(" combinations")[0].split(" of "))
    assert checked == 4 + 300 and 0.25 < invalid / checked < 0.45  # half are tiny, 28 of whose 41 masks are too wide


def test_config_reason_is_the_schemas_reason_in_one_line() -> None:
    for values, reason in (
        ({"n_fft": 64, "hop_length": 100}, "hop_length 100 must not exceed n_fft 64"),
        ({"lr": 5}, "lr: Input should be less than or equal to 1 (got 5)"),
    ):
        with pytest.raises(ConfigError) as error:
            make_config(data="/d", **values)
        assert config_reason(error.value) == reason


def test_a_trial_to_try_first_must_lie_in_the_space() -> None:
    space = parse_space(["lr=1e-4:1e-1:log", "model=tiny,fcn"], {})
    assert parse_point("lr=0.003,model=fcn", space) == {"lr": 0.003, "model": "fcn"}
    for bad, message in (("lr=0.5", "outside"), ("model=shortchunk_cnn", "outside"), ("seed=3", "searched fields")):
        with pytest.raises(SpaceError, match=message):
            parse_point(bad, space)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--trials", "3", "--space", "lr=0:1"], "not a valid lr"),
        (["--trials", "3", "--space", "n_fft=64:128", "--space", "hop_length=200:4096"], "must not exceed n_fft"),
        (["--trials", "3"], "at least one searched field"),
        (["--space", "lr=1e-4:1e-2"], "needs --trials"),
        (["--trials", "9", "--space", "model=tiny,fcn", "--sampler", "grid"], "the grid has 2 points"),
        (["--trials", "3", "--space", "lr=1e-4:1e-2", "--sampler", "grid"], "a grid needs listed values"),
        (["--trials", "2", "--space", "lr=1e-4:1e-2", "--parallel", "3"], "AUTOTAG_MAX_RUNS"),
        (["--trials", "2", "--space", "lr=1e-4:1e-2", "--try", "lr=0.5"], "outside"),
        (["--trials", "2", "--space", "lr=1e-4:1e-2", "--storage", "sqlite:////no/such/dir/x.db"], "cannot open"),
    ],
)
def test_the_cli_refuses_bad_sweeps_with_exit_2_before_writing_anything(
    small_csv_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    runs = tmp_path / "runs"
    code = main(["sweep", "--data", str(small_csv_dataset), "--runs-dir", str(runs), *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert not (runs / "sweeps").exists() or not any((runs / "sweeps").iterdir())


def test_sweep_actions_refuse_new_sweep_options_and_unknown_sweeps(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sweep", "list", "--trials", "3", "--runs-dir", str(tmp_path)]) == 2
    assert "takes no --trials" in capsys.readouterr().err
    assert main(["sweep", "show", "--runs-dir", str(tmp_path)]) == 2
    assert "needs a sweep" in capsys.readouterr().err
    assert main(["sweep", "show", "nothing-here", "--runs-dir", str(tmp_path)]) == 2
    assert "no sweep 'nothing-here'" in capsys.readouterr().err
    assert main(["sweep", "--data", str(tmp_path / "none"), "--trials", "2", "--space", "lr=1e-4:1e-2"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_export_slurm_refuses_a_sweep_whose_study_is_in_sqlite(
    small_csv_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from autotag.sweeps.manager import new_sweep

    folder = new_sweep({"data": str(small_csv_dataset)}, ["lr=1e-4:1e-2"], trials=2, runs_dir=tmp_path / "runs")
    assert main(["sweep", "export-slurm", str(folder.path)]) == 2
    assert "--storage postgresql" in capsys.readouterr().err


def test_export_slurm_of_a_new_sweep_refuses_sqlite_before_making_it(
    small_csv_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = tmp_path / "runs"
    args = ["--data", str(small_csv_dataset), "--trials", "2", "--space", "lr=1e-4:1e-2", "--runs-dir", str(runs)]
    assert main(["sweep", "export-slurm", *args]) == 2
    assert "--storage postgresql" in capsys.readouterr().err and not runs.exists()


def test_a_grid_sweep_is_made_with_its_trials_to_run_first(small_csv_dataset: Path, tmp_path: Path) -> None:
    from autotag.sweeps.manager import new_sweep
    from autotag.sweeps.results import load_study

    folder = new_sweep(
        {"data": str(small_csv_dataset)},
        ["lr=0.001,0.002,0.003"],
        trials=3,
        sampler="grid",
        runs_dir=tmp_path / "runs",
        first=["lr=0.002"],
    )
    [waiting] = load_study(folder).get_trials()
    assert waiting.state.name == "WAITING" and waiting.system_attrs["fixed_params"] == {"lr": 0.002}
