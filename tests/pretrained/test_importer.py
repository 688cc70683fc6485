"""`pretrained get` makes an ordinary completed run that the whole product takes as it is."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from autotag.access import read_log
from autotag.cli.main import main
from autotag.pretrained.catalogue import CATALOGUE
from autotag.pretrained.importer import CHECKPOINT, get
from autotag.runs import manager
from autotag.runs.table import best_run
from autotag.store.job import RunState
from autotag.store.run_folder import RunFolder, default_runs_dir


@pytest.fixture
def mirror(published_weights: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AUTOTAG_PRETRAINED_DIR", str(published_weights))
    return published_weights


def test_an_import_is_a_completed_run_marked_published(mirror: Path) -> None:
    run = RunFolder(get("mtat-musicnn"))
    status = run.read_status()
    assert status.state is RunState.COMPLETED and status.published == "mtat-musicnn"
    assert status.best_checkpoint == f"checkpoints/{CHECKPOINT}" and status.test_roc_auc is None
    assert json.loads(run.labels.read_text())[:3] == ["guitar", "classical", "slow"]
    metrics = json.loads(run.metrics.read_text())
    assert "roc_auc_macro" not in metrics  # nothing ranks it against runs trained here
    assert metrics["published"]["roc_auc_macro"] == CATALOGUE["mtat-musicnn"].roc_auc
    assert metrics["published"]["licence"].startswith("MIT") and metrics["published"]["sha256"]
    assert run.read_config()["data"] == "published:mtat-musicnn" and run.read_config()["model"] == "musicnn"
    assert [e["action"] for e in read_log(default_runs_dir())] == ["import"]
    from autotag.runs.table import summarize

    assert summarize(manager.list_runs()[0])["epoch"] == "-"  # nothing trained here: no "0/100"


def test_a_second_get_is_instant_and_the_same_run(mirror: Path) -> None:
    first = get("mtat-fcn")
    start = time.monotonic()
    assert get("mtat-fcn") == first
    assert time.monotonic() - start < 1.0 and len(manager.list_runs()) == 1


def test_a_trained_run_is_always_the_default_pick_over_a_published_one(mirror: Path, trained_run: Path) -> None:
    """Published scores come from another test set: they are not ranked against runs trained here."""
    import shutil

    published_run = get("mtat-fcn")
    assert best_run(manager.list_runs()).path == published_run  # nothing else: the newcomer's pick
    shutil.copytree(trained_run, default_runs_dir() / trained_run.name)
    assert best_run(manager.list_runs()).path == default_runs_dir() / trained_run.name


def test_the_cli_lists_imports_and_tags_with_fifty_mtat_tags(
    mirror: Path, capsys: pytest.CaptureFixture, demo_dataset: Path
) -> None:
    assert main(["pretrained", "list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out[1:]] == list(CATALOGUE) and all(line.endswith("mirror") for line in out[1:])
    assert main(["pretrained", "get", "mtat-fcn"]) == 0
    run = Path(capsys.readouterr().out.splitlines()[-1])
    assert RunFolder(run).read_status().published == "mtat-fcn"
    clip = str(demo_dataset / "audio" / "clip_0000.wav")
    assert main(["tag", "--run", str(run), clip]) == 0
    scores = json.loads(capsys.readouterr().out)[clip]
    assert len(scores) == 50 and "classical" in scores and "female vocal" in scores


def test_the_runs_page_shows_a_published_run_with_its_authors_scores(mirror: Path) -> None:
    from streamlit.testing.v1 import AppTest

    from tests.test_app import APP

    run = get("mtat-fcn")
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("pages/runs.py").run()
    assert not at.exception and not at.warning, [w.value for w in at.warning]
    assert "Published model: mtat-fcn (fcn)" in [h.value for h in at.subheader]
    assert any("ROC-AUC 0.9002" in m.value and "not comparable" in m.value for m in at.markdown)
    assert at.text_input(key=f"robust_data_{run.name}").value  # its robustness report needs a data set named
    assert not at.get("plotly_chart") and "No curves: a published model" in at.caption[0].value


def test_a_newcomer_tags_an_upload_with_a_published_model_in_one_click(mirror: Path, demo_dataset: Path) -> None:
    from streamlit.testing.v1 import AppTest

    from tests.test_app import APP

    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("pages/tag.py").run()
    assert "No model yet" in at.info[0].value
    at.button(key="tag_published").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    [run] = manager.list_runs()
    assert run.status.published == "mtat-fcn" and at.selectbox(key="tag_run").value == run.name
    clip = (demo_dataset / "audio" / "clip_0001.wav").read_bytes()
    at.file_uploader(key="tag_upload").set_value([("clip.wav", clip, "audio/wav")]).run()
    assert not at.exception and [s.value for s in at.subheader] == ["clip.wav"]
    assert at.markdown[0].value.startswith("**Tags:**") and len(at.get("plotly_chart")) == 2


def test_offline_without_a_mirror_the_button_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit.testing.v1 import AppTest

    from autotag.pretrained.catalogue import Published
    from tests.test_app import APP

    monkeypatch.setattr(Published, "url", property(lambda self: "http://127.0.0.1:9/x.pth"))
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("pages/tag.py").run()
    at.button(key="tag_published").click().run()
    assert not at.exception and "cannot download http://127.0.0.1:9/x.pth" in at.error[0].value
    assert manager.list_runs() == []


def test_the_train_page_imports_a_published_model_chosen_to_start_from(
    mirror: Path, demo_dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamlit.testing.v1 import AppTest

    from tests.test_app import APP

    monkeypatch.setenv("AUTOTAG_DEMO_DIR", str(demo_dataset))
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.selectbox(key="train_init_from").set_value("import:mtat-musicnn").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    [run] = manager.list_runs()
    assert run.status.published == "mtat-musicnn" and at.selectbox(key="train_init_from").value == str(run.path)
    assert at.selectbox(key="train_model").value == "musicnn" and at.slider(key="train_n_mels").value == 96
    at.selectbox(key="train_transfer").set_value("linear-probe").run()
    assert at.slider(key="train_freeze_epochs").disabled and not at.button(key="train_launch").disabled
    assert any(c.value.startswith("Linear probe on this CPU: about") for c in at.caption)


def test_a_published_models_robustness_report_scores_the_data_set_it_is_given(
    mirror: Path, instrument_set: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from autotag.robustness.job import ReportFolder

    run = get("mtat-musicnn")
    assert main(["robustness", "--run", str(run), "--perturbations", "gain"]) == 2
    assert "is a published model: its data set is not here; give a data set to score (--data DIR)" in (
        capsys.readouterr().err
    )
    assert not ReportFolder(run).report.exists()
    args = ["robustness", "--run", str(run), "--perturbations", "gain", "--split", "train"]
    assert main([*args, "--data", str(instrument_set)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["clean"]["roc_auc_macro"] > 0.6 and set(report["gain"]) == {"-20 dB", "-40 dB"}
    assert report["clean"]["per_tag"]["techno"]["roc_auc"] is None  # a tag the data set does not have: not scored
    assert ReportFolder(run).read_status().data == str(instrument_set)


def test_an_import_killed_midway_is_a_failed_run_the_scheduler_never_trains(mirror: Path) -> None:
    import os
    import subprocess
    import sys

    code = (
        "import os; import autotag.store.checkpoints as c; c.save_atomic = lambda *a: os._exit(9); "
        "from autotag.pretrained.importer import get; get('mtat-fcn')"
    )
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ}, timeout=120)
    assert done.returncode == 9
    [run] = manager.list_runs()
    assert run.state is RunState.FAILED and run.status.error == "the import of mtat-fcn did not finish: get it again"
    assert manager.schedule() == []
    assert get("mtat-fcn") != run.path  # a new, complete import


def test_a_published_model_that_cannot_be_had_sends_the_train_page_back_to_scratch(
    demo_dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamlit.testing.v1 import AppTest

    from autotag.pretrained.catalogue import Published
    from tests.test_app import APP

    monkeypatch.setenv("AUTOTAG_DEMO_DIR", str(demo_dataset))
    monkeypatch.setattr(Published, "url", property(lambda self: "http://127.0.0.1:9/x.pth"))
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.selectbox(key="train_init_from").set_value("import:msd-fcn").run()
    assert not at.exception and "cannot download http://127.0.0.1:9/x.pth" in at.error[0].value
    assert at.selectbox(key="train_init_from").value == "" and manager.list_runs() == []
