"""The runs table's pieces: which config fields differ between runs."""

from __future__ import annotations

from pathlib import Path

from autotag.config import make_config
from autotag.runs.table import RunFilter, config_differences, facet_values, legend_names, page_of, select_rows
from autotag.store.run_folder import create_run


def test_config_differences_name_only_the_fields_that_differ(tmp_path: Path) -> None:
    a = create_run(make_config(data=str(tmp_path), model="tiny", lr=1e-3), tmp_path / "runs", "a")
    b = create_run(make_config(data=str(tmp_path), model="tiny", lr=1e-4), tmp_path / "runs", "b")
    c = create_run(make_config(data=str(tmp_path), model="fcn", lr=1e-4), tmp_path / "runs", "c")
    assert config_differences([a, b]) == {"lr": {a.name: 1e-3, b.name: 1e-4}}
    diff = config_differences([a, b, c])
    assert diff["model"] == {a.name: "tiny", b.name: "tiny", c.name: "fcn"} and "data" not in diff
    assert config_differences([a, a]) == {}


def test_a_legend_names_runs_by_the_name_given_and_their_config_differences(tmp_path: Path) -> None:
    a = create_run(make_config(data=str(tmp_path), model="tiny", lr=1e-3), tmp_path / "runs", "quick")
    b = create_run(make_config(data=str(tmp_path), model="tiny", lr=1e-4), tmp_path / "runs", "quick")
    c = create_run(make_config(data=str(tmp_path), model="tiny", lr=1e-4), tmp_path / "runs", "quick")
    assert legend_names([a]) == {a.name: "quick"}
    assert legend_names([a, b]) == {a.name: "quick · lr 0.001", b.name: "quick · lr 0.0001"}
    same = legend_names([b, c])  # identical configs and names: told apart by the folder's id
    assert same[b.name] != same[c.name] and same[c.name] == f"quick #{c.name.rsplit('_', 1)[-1]}"
    d = create_run(
        make_config(data=str(tmp_path / "other"), model="fcn", lr=0.1, seed=3, batch_size=4), tmp_path / "runs", "x"
    )
    e = create_run(make_config(data=str(tmp_path / "y" / "other"), model="fcn", lr=0.1), tmp_path / "runs", "e")
    assert legend_names([d, e])[e.name] == "e · batch_size 16, data y/other, seed 42"  # two folders called "other"
    assert (
        legend_names([a, d])[d.name] == "x · batch_size 4, chunk_seconds 29.1, data other, +4 more"
    )  # fcn: its own input


def _row(
    name: str, state: str = "completed", auc: float | None = 0.8, sweep: str | None = None, **more: object
) -> dict:
    return {
        "run": name, "state": state, "model": "tiny", "data": "demo", "sweep": sweep, "owner": "os:me",
        "created": float(len(name)), "best val_loss": 0.5, "val ROC-AUC": None, "val PR-AUC": None,
        "test ROC-AUC": auc, "duration (s)": 10, **more,
    }  # fmt: skip


ROWS = [
    _row("quick-demo", auc=0.81),
    _row("shortchunk", auc=None, state="running", model="shortchunk_cnn"),
    _row("lr-t000", auc=0.70, sweep="lr"),
    _row("lr-t001", auc=0.85, sweep="lr", state="pruned"),
    _row("bs-t000", auc=0.60, sweep="bs"),
]


def test_a_search_and_facets_narrow_the_table_and_each_sweep_is_one_row() -> None:
    rows = select_rows(ROWS, sort_by="test ROC-AUC")
    assert [r["run"] for r in rows] == ["lr (2 trials)", "quick-demo", "bs (1 trials)", "shortchunk"]
    lr = rows[0]
    assert lr["state"] == "1 completed, 1 pruned" and lr["test ROC-AUC"] == 0.85 and lr["model"] == "tiny"
    assert rows[-1]["test ROC-AUC"] is None  # missing values last, whichever way the sort goes
    assert [r["run"] for r in select_rows(ROWS, sort_by="test ROC-AUC", descending=False)][-1] == "shortchunk"
    assert [r["run"] for r in select_rows(ROWS, RunFilter(text="T00"), group_sweeps=False)] == [
        "lr-t000", "lr-t001", "bs-t000",
    ]  # fmt: skip
    assert [r["run"] for r in select_rows(ROWS, RunFilter(sweep=("lr",)))] == ["lr-t000", "lr-t001"]  # its trials
    assert [r["run"] for r in select_rows(ROWS, RunFilter(model=("shortchunk_cnn",)))] == ["shortchunk"]
    assert facet_values(ROWS)["sweep"] == ["bs", "lr"] and facet_values(ROWS)["state"] == [
        "completed",
        "pruned",
        "running",
    ]


def test_pages_cut_the_rows_and_a_page_beyond_the_last_shows_the_last() -> None:
    rows = [{"run": str(i)} for i in range(120)]
    first, pages = page_of(rows, 1, 50)
    assert pages == 3 and [r["run"] for r in first][:2] == ["0", "1"] and len(first) == 50
    last, _ = page_of(rows, 9, 50)
    assert [r["run"] for r in last] == [str(i) for i in range(100, 120)]
    assert page_of([], 1, 50) == ([], 1)
