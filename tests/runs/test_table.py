"""The runs table's pieces: which config fields differ between runs."""

from __future__ import annotations

from pathlib import Path

from autotag.config import make_config
from autotag.runs.table import RunFilter, config_differences, facet_values, page_of, select_rows
from autotag.store.run_folder import create_run


def test_config_differences_name_only_the_fields_that_differ(tmp_path: Path) -> None:
    a = create_run(make_config(data=str(tmp_path), model="tiny", lr=1e-3), tmp_path / "runs", "a")
    b = create_run(make_config(data=str(tmp_path), model="tiny", lr=1e-4), tmp_path / "runs", "b")
    c = create_run(make_config(data=str(tmp_path), model="fcn", lr=1e-4), tmp_path / "runs", "c")
    assert config_differences([a, b]) == {"lr": {a.name: 1e-3, b.name: 1e-4}}
    diff = config_differences([a, b, c])
    assert diff["model"] == {a.name: "tiny", b.name: "tiny", c.name: "fcn"} and "data" not in diff
    assert config_differences([a, a]) == {}


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
