"""Every dashboard page through streamlit's AppTest: empty, with runs, and its main action."""

from __future__ import annotations

import ast
import base64
import csv
import io
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import streamlit as st
from streamlit.testing.v1 import AppTest

from autotag.config import QUICK_DEMO, TrainConfig, field_choices, field_range, make_config
from autotag.runs import manager
from autotag.store.job import RunState
from autotag.store.run_folder import RunFolder, create_run, default_runs_dir
from tests.conftest import tone

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
PAGES = ["pages/train.py", "pages/runs.py", "pages/sweep.py", "pages/tag.py", "pages/library.py", "pages/data.py"]


def _page(path: str, timeout: float = 60) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=timeout)
    at.run()
    if path != "pages/train.py":
        at.switch_page(path).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.fixture
def with_finished_run(trained_run: Path) -> Path:
    """A copy of the session's trained run in this test's runs folder."""
    dest = default_runs_dir() / trained_run.name
    shutil.copytree(trained_run, dest)
    return dest


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_with_no_runs(page: str, demo_dataset: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOTAG_DEMO_DIR", str(demo_dataset))
    at = _page(page)
    if page == "pages/runs.py":
        assert "No runs yet" in at.info[0].value
        assert at.button(key="runs_quick_demo")
    if page == "pages/tag.py":
        assert "No model yet" in at.info[0].value
    if page == "pages/sweep.py":
        assert "No sweeps yet" in at.info[0].value
        assert at.button(key="sweep_launch")
    if page == "pages/library.py":
        assert at.info[0].value.startswith("No library found in ")
        assert "python -m autotag tag --run RUN DIR --recursive --out lib.sqlite" in at.info[0].value


def test_train_page_explains_invalid_combinations(demo_dataset: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOTAG_DEMO_DIR", str(demo_dataset))
    at = _page("pages/train.py")
    assert not at.button(key="train_launch").disabled
    at.selectbox(key="train_model").set_value("fcn").run()
    assert at.slider(key="train_n_mels").value == 96  # the model's paper value
    at.slider(key="train_chunk_seconds").set_value(3.0).run()
    assert "model fcn needs chunks of at least 20.48 s" in at.error[0].value
    assert at.button(key="train_launch").disabled
    at.text_input(key="train_data").set_value("/nowhere").run()
    at.selectbox(key="train_model").set_value("tiny").run()
    assert "does not exist" in at.error[0].value


def test_train_page_estimates_the_training_time_before_launch(
    demo_dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from autotag.training import estimate

    monkeypatch.setenv("AUTOTAG_DEMO_DIR", str(demo_dataset))
    # A step time of this machine's order (tests/training/test_estimate.py times real ones):
    # fixed here, so that which side of an hour a run lands on does not depend on the load.
    per_chunk = {"shortchunk_cnn": 0.5, "tiny": 0.01}
    monkeypatch.setattr(estimate, "chunk_seconds", lambda model, *_: ("cpu", per_chunk[model]))
    st.cache_data.clear()  # the page keeps estimates per config for the process: an earlier test's would show
    at = _page("pages/train.py", timeout=120)
    # The default model for 100 epochs takes hours on a 2-core CPU: said as a warning.
    assert at.warning[0].value.startswith("Training time on this CPU: about ")
    # 96 train clips x 4 chunks per clip (the default) / batch 16
    assert "per epoch (24 steps of 16 chunks, and validation), up to " in at.warning[0].value
    assert "for 100 epochs" in at.warning[0].value
    assert "The tiny model, fewer epochs, a time budget or a GPU" in at.warning[0].value
    at.selectbox(key="train_model").set_value("tiny").run()
    shown = [c.value for c in at.caption if c.value.startswith("Training time on this CPU")]
    assert shown and not at.warning


def test_train_page_starts_from_a_finished_run_with_its_model(
    with_finished_run: Path, demo_dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTOTAG_DEMO_DIR", str(demo_dataset))
    at = _page("pages/train.py")
    options = at.selectbox(key="train_init_from").options
    assert options[:2] == ["scratch (random weights)", f"run {with_finished_run.name} (its best checkpoint)"]
    assert options[2] == "published mtat-fcn: FCN trained on MagnaTagATune, top 50 tags"  # imported when chosen
    assert at.slider(key="train_freeze_epochs").disabled and at.selectbox(key="train_transfer").disabled
    at.selectbox(key="train_init_from").set_value(str(with_finished_run)).run()
    assert at.selectbox(key="train_model").value == "tiny" and at.slider(key="train_n_mels").value == 64
    assert not at.error and not at.button(key="train_launch").disabled
    at.slider(key="train_n_mels").set_value(48).run()  # the source's features are needed: refused, named
    assert "its model differs (n_mels 64 there, 48 here)" in at.error[0].value
    assert at.button(key="train_launch").disabled


def test_train_page_offers_the_schemas_choices_and_stops_inside_its_ranges(
    demo_dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTOTAG_DEMO_DIR", str(demo_dataset))
    at = _page("pages/train.py")
    offered = set()
    for widget in [*at.selectbox, *at.select_slider]:
        name = widget.key.removeprefix("train_")
        if name == "init_from":  # its choices are the completed runs, not the schema's
            continue
        try:
            allowed = field_choices(name)
        except ValueError:  # stops of a numeric field: UI choices, inside the schema's range
            lo, hi = field_range(name)
            assert all(lo <= float(option) <= hi for option in widget.options), name
        else:
            assert [o.split(" — ")[0] for o in widget.options] == [str(v) for v in allowed], name
            offered.add(name)
    with_choices = set()
    for name in TrainConfig.model_fields:
        try:
            field_choices(name)
        except ValueError:
            continue
        with_choices.add(name)
    assert offered == with_choices


def _plotly_array(value: list | dict) -> np.ndarray:
    """An array of a plotly figure's JSON: a list, or plotly's base64 `bdata` encoding."""
    if isinstance(value, list):
        return np.asarray(value)
    shape = [int(n) for n in str(value.get("shape", -1)).split(",")]
    return np.frombuffer(base64.b64decode(value["bdata"]), value["dtype"]).reshape(shape)


def test_data_page_offers_the_schemas_formats_and_previews_default_features(
    demo_dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTOTAG_DEMO_DIR", str(demo_dataset))
    at = _page("pages/data.py")
    assert at.selectbox(key="data_format").options == field_choices("format")
    assert not at.error
    cooc, spec = (json.loads(chart.proto.spec)["data"][0] for chart in at.get("plotly_chart")[1:])
    share = _plotly_array(cooc["z"])
    assert share.shape == (8, 8) and (np.diag(share) == 1).all()  # the demo set's 8 tags, each with itself
    mels, times = _plotly_array(spec["z"]), _plotly_array(spec["x"])
    assert mels.shape == (128, 10 * 16000 // 256 + 1)  # the default mel bands and hop on a 10 s clip
    assert times[1] == 256 / 16000


def test_settings_survive_a_visit_to_another_page(demo_dataset: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Streamlit drops a widget's value when its page is left, unless it persists it."""
    monkeypatch.setenv("AUTOTAG_DEMO_DIR", str(demo_dataset))
    at = _page("pages/train.py")
    at.selectbox(key="train_model").set_value("fcn").run()
    at.select_slider(key="train_lr").set_value(2e-4).run()
    at.text_input(key="train_name").set_value("mine").run()
    at.switch_page("pages/data.py").run()
    at.switch_page("pages/train.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="train_model").value == "fcn"
    assert at.select_slider(key="train_lr").value == 2e-4
    assert at.text_input(key="train_name").value == "mine"
    assert at.slider(key="train_n_mels").value == 96  # the model's value, not the default model's


def test_train_page_gives_a_job_script_for_several_machines(
    demo_dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTOTAG_DEMO_DIR", str(demo_dataset))
    at = _page("pages/train.py")
    at.slider(key="train_devices").set_value(4).run()
    at.number_input(key="train_num_nodes").set_value(2).run()
    assert at.button(key="train_launch").disabled
    assert "started by the cluster's scheduler" in at.info[0].value
    at.number_input(key="train_num_nodes").set_value(1).run()
    assert not at.button(key="train_launch").disabled and not at.info


@pytest.mark.slow
def test_launch_from_train_page_runs_to_completion(demo_dataset: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOTAG_DEMO_DIR", str(demo_dataset))
    at = _page("pages/train.py")
    at.button(key="train_preset").click().run()
    assert at.selectbox(key="train_model").value == "tiny"
    at.slider(key="train_max_epochs").set_value(2).run()
    at.button(key="train_launch").click().run()
    assert not at.exception, [e.value for e in at.exception]
    runs = manager.list_runs()
    assert len(runs) == 1 and runs[0].name.split("_")[1] == "quick-demo"
    assert at.session_state["runs_selected"] == [runs[0].name]
    deadline = time.monotonic() + 240
    while manager.list_runs()[0].state in ("queued", "starting", "running") and time.monotonic() < deadline:
        time.sleep(1)
    run = manager.list_runs()[0]
    assert run.state == "completed", manager.log_tail(run.path)
    assert (run.path / "metrics.json").is_file() and (run.path / "thresholds.json").is_file()
    # Every preset value reached the run: a value the widget has no stop for would be replaced.
    saved = RunFolder(run.path).read_config()
    assert {k: saved[k] for k in QUICK_DEMO} == {**QUICK_DEMO, "max_epochs": 2}


def test_quick_demo_button_on_the_empty_runs_page(demo_dataset: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOTAG_DEMO_DIR", str(demo_dataset))
    at = _page("pages/runs.py")
    at.button(key="runs_quick_demo").click().run()
    assert not at.exception
    runs = manager.list_runs()
    assert len(runs) == 1 and runs[0].status.model == "tiny"
    assert manager.stop(runs[0].path, grace=5) == "stopped"


@pytest.mark.slow
def test_runs_page_shows_a_finished_run(with_finished_run: Path) -> None:
    at = _page("pages/runs.py")
    table = at.dataframe[0].value
    assert table["run"].tolist() == [with_finished_run.name] and table["state"].tolist() == ["completed"]
    assert at.get("plotly_chart"), "the curves chart is missing"
    assert any("ROC-AUC (macro)" == m.label for m in at.metric)
    assert "Training ended: max_epochs (8) reached" in [c.value for c in at.caption]
    assert at.button(key="runs_stop").disabled and not at.button(key="runs_delete").disabled


@pytest.mark.slow
def test_tag_page_keeps_the_chosen_run_until_it_is_deleted(with_finished_run: Path) -> None:
    shutil.copytree(with_finished_run, with_finished_run.with_name(with_finished_run.name + "-copy"))
    at = _page("pages/tag.py")
    best = at.selectbox(key="tag_run").value
    other = next(r.name for r in manager.list_runs() if r.name != best)
    at.selectbox(key="tag_run").set_value(other).run()
    at.switch_page("pages/runs.py").run()
    at.switch_page("pages/tag.py").run()
    assert at.selectbox(key="tag_run").value == other  # kept across the page switch
    manager.delete(default_runs_dir() / other)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="tag_run").value == best  # back to the best run


@pytest.mark.slow
def test_tag_page_tags_an_uploaded_and_a_recorded_clip(with_finished_run: Path, demo_dataset: Path) -> None:
    at = _page("pages/tag.py")
    assert at.selectbox(key="tag_run").value == with_finished_run.name
    assert any("test clips, which had no say in them, these thresholds tagged" in c.value for c in at.caption)
    clip = (demo_dataset / "audio" / "clip_0001.wav").read_bytes()
    at.file_uploader(key="tag_upload").set_value([("clip.wav", clip, "audio/wav"), ("junk.mp3", b"no", "audio/mpeg")])
    at.run()
    assert not at.exception
    assert [s.value for s in at.subheader] == ["clip.wav", "junk.mp3"]
    assert "junk.mp3: not a readable audio file" in at.error[0].value
    assert at.markdown[0].value.startswith("**Tags:**")
    assert len(at.get("plotly_chart")) == 2 and len(at.get("download_button")) == 2

    buf = io.BytesIO()
    sf.write(buf, tone(4.0)[:, 0], 16000, format="WAV")
    at.audio_input(key="tag_record").set_value(("recording.wav", buf.getvalue(), "audio/wav"))
    at.run()
    assert "recording.wav" in [s.value for s in at.subheader]

    players = len(at.get("audio"))
    at.toggle(key="tag_hear_clip.wav").set_value(True).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="tag_perturb_clip.wav").value == "white_noise"
    assert len(at.get("audio")) == players + 4  # one player per strength: 30, 20, 10 and 0 dB SNR
    assert any(m.value.startswith("**0 dB SNR**") for m in at.markdown)


def test_the_dashboard_draws_its_pages_without_importing_torch(
    demo_dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """app.py and each page, drawn as a new visitor sees them (the Train page's time estimate
    included, which times its steps in a child process), import neither torch nor Lightning,
    but for the Data page's spectrogram, which is the model's own front end (torchaudio).

    Torch comes into the dashboard's process otherwise only through app.py's background preload
    of the tagger, after the first page is drawn (so that a first tag does not wait for it): the
    child stands a module in for the tagger, so that any torch import left is a page's own.
    """
    monkeypatch.setenv("AUTOTAG_DEMO_DIR", str(demo_dataset))
    page_files = sorted(f"pages/{p.name}" for p in (ROOT / "pages").glob("*.py"))
    page_files.append(page_files.pop(page_files.index("pages/data.py")))
    code = (
        "import sys, types\n"
        "sys.modules['autotag.serving.tagger'] = types.ModuleType('autotag.serving.tagger')\n"
        "from streamlit.testing.v1 import AppTest\n"
        f"at = AppTest.from_file({APP!r}, default_timeout=120)\n"
        "at.run()\n"
        "shown = [e.value for e in (*at.caption, *at.warning)]\n"
        "estimated = any('Training time' in v for v in shown)\n"
        "heavy = lambda: 'torch' in sys.modules or 'lightning' in sys.modules\n"
        "drawn = [('app.py', [str(e.value) for e in at.exception], heavy())]\n"
        f"for page in {page_files!r}:\n"
        "    at.switch_page(page).run()\n"
        "    drawn.append((page, [str(e.value) for e in at.exception], heavy()))\n"
        "print(repr((estimated, drawn)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    estimated, drawn = ast.literal_eval(out.stdout.strip().splitlines()[-1])
    assert estimated, "the Train page showed no training time estimate"
    assert [page for page, _, _ in drawn] == ["app.py", *page_files]
    assert all(not errors for _, errors, _ in drawn), drawn
    assert [page for page, _, torch in drawn if torch] == ["pages/data.py"]


@pytest.mark.slow
def test_runs_page_makes_a_robustness_report_and_compares_two(with_finished_run: Path) -> None:
    from autotag.robustness import job

    name = with_finished_run.name
    at = _page("pages/runs.py")
    assert "Make a robustness report" in [e.label for e in at.expander]
    at.multiselect(key=f"robust_names_{name}").set_value(["white_noise", "gain"])
    at.button(key=f"robust_start_{name}").click().run()
    assert not at.exception, [e.value for e in at.exception]
    folder = job.ReportFolder(with_finished_run)
    deadline = time.monotonic() + 120
    while folder.state().active and time.monotonic() < deadline:
        time.sleep(0.2)
    assert folder.read_status().state == "completed", folder.read_status().error
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.get("plotly_chart")) == 4  # the curves, each tag's curves, the heatmap, the per-tag view
    assert at.selectbox(key=f"robust_pick_{name}").options == ["white_noise", "gain"]
    assert any(c.value.startswith("Decisions at the run's thresholds") for c in at.caption)
    assert "Make the report again" in [e.label for e in at.expander]

    twin = shutil.copytree(with_finished_run, with_finished_run.with_name(name + "-twin"))
    at.run()
    at.multiselect(key="runs_pick").set_value([name, twin.name]).run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.get("plotly_chart")) == 6  # the curves, each tag's curves of one, two heatmaps, two per-tag views
    assert at.selectbox(key="robust_cmp_pick").value == "white_noise"


@pytest.mark.slow
def test_runs_page_exports_a_model_for_download(with_finished_run: Path) -> None:
    at = _page("pages/runs.py")
    at.radio(key="runs_export_format").set_value("torchscript").run()
    at.button(key="runs_export").click().run(timeout=120)
    assert not at.exception, [e.value for e in at.exception]
    assert (with_finished_run / "export" / "model.pt").is_file()
    assert any("largest difference to the PyTorch model" in c.value for c in at.caption)
    assert at.get("download_button")


@pytest.mark.slow
def test_sweep_page_launches_a_sweep_shows_pruning_and_hands_the_best_run_on(
    demo_dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two range widgets, six trials of tiny in the background, a hopeless lr tried fourth (pruned)."""
    from autotag.sweeps import manager as sweeps

    monkeypatch.setenv("AUTOTAG_DEMO_DIR", str(demo_dataset))
    at = _page("pages/sweep.py")
    at.text_input(key="sweep_data").set_value(str(demo_dataset)).run()
    at.multiselect(key="sweep_fields").set_value(["lr", "mixup"]).run()
    at.select_slider(key="sweep_space_lr").set_value((1e-4, 1.0)).run()
    at.slider(key="sweep_space_mixup").set_value((0.0, 0.3)).run()
    at.slider(key="sweep_max_epochs").set_value(4).run()
    at.slider(key="sweep_trials").set_value(6).run()
    at.text_area(key="sweep_first").set_value("lr=0.003\nlr=0.002\nlr=0.005\nlr=1.0").run()
    assert "lr=0.0001:1.0:log" in at.caption[-1].value and "mixup=0.0:0.3" in at.caption[-1].value
    at.button(key="sweep_launch").click().run()
    assert not at.exception and "sweep_error" not in at.session_state, at.session_state["sweep_error"]
    [info] = sweeps.list_sweeps()
    assert info.spec.trials == 6 and info.spec.fixed["model"] == "tiny" and info.spec.fixed["max_epochs"] == 4
    deadline = time.monotonic() + 400
    while sweeps.derive_state(info.folder).active and time.monotonic() < deadline:
        time.sleep(1)
    assert sweeps.derive_state(info.folder) == "completed", info.folder.log.read_text()[-3000:]

    at.run()
    assert not at.exception, [e.value for e in at.exception]
    compare, trials = (d.value for d in at.dataframe)  # all sweeps, then the chosen sweep's trials
    assert len(trials) == 6 and trials["state"].tolist()[3] == "pruned" and trials["lr"].tolist()[3] == 1.0
    assert set(trials["state"]) <= {"complete", "pruned"}
    assert len(at.get("plotly_chart")) == 4  # history, parallel coordinates, importances, per-epoch values
    assert compare["finished"].tolist() == ["6/6"]
    best_run = compare["best run"].tolist()[0]
    at.button(key="sweep_tag").click().run()
    assert not at.exception and at.selectbox(key="tag_run").value == best_run  # the Tag page tags with it
    at.switch_page("pages/sweep.py").run()
    at.button(key="sweep_train").click().run()
    assert not at.exception, [e.value for e in at.exception]
    best_lr = RunFolder(default_runs_dir() / best_run).read_config()["lr"]
    assert at.select_slider(key="train_lr").value == best_lr  # the Train page shows the best trial's config
    assert at.session_state["train_data"] == str(demo_dataset)


def test_stop_before_the_first_checkpoint_asks_first_and_a_run_with_nothing_to_resume_says_so() -> None:
    """A trainer (here a stand-in process) that has saved nothing yet: Stop warns that the run
    could not resume; once stopped, Resume and the robustness report are disabled with why."""
    from autotag.store.procs import process_start_time

    trainer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True)
    try:
        run = RunFolder(create_run(make_config(data=str(ROOT), model="tiny"), default_runs_dir(), "early"))
        run.write_status(state=RunState.RUNNING, pid=trainer.pid, pid_start=process_start_time(trainer.pid), epoch=1)
        at = _page("pages/runs.py")
        at.button(key="runs_stop").click().run()
        assert any("has not saved its first checkpoint yet" in w.value for w in at.warning)
        at.button(key="runs_stop_no").click().run()  # Cancel: it keeps training
        assert trainer.poll() is None and not any("first checkpoint" in w.value for w in at.warning)
        at.button(key="runs_stop").click().run()
        at.button(key="runs_stop_yes").click().run()
        assert trainer.wait(timeout=30) is not None and run.read_status().state is RunState.STOPPED
        at.run()
        resume = at.button(key="runs_resume")
        assert resume.disabled and "no checkpoint to resume from" in resume.help
        assert at.button(key="runs_stop").disabled and at.button(key="runs_stop").help.startswith("it is stopped")
        report = at.button(key=f"robust_start_{run.name}")
        assert report.disabled and "no checkpoint to score" in report.help
    finally:
        trainer.kill()


def test_the_runs_table_searches_filters_sorts_groups_and_pages_many_runs() -> None:
    runs_dir = default_runs_dir()
    config = make_config(data=str(ROOT), model="tiny")
    for i in range(60):
        run = RunFolder(create_run(config, runs_dir, f"run{i:02d}"))
        run.write_status(state=RunState.COMPLETED, test_roc_auc=0.5 + i / 200, created=1.7e9 + i)
    for i in range(3):  # a sweep's trials: one row until the sweep is filtered on
        run = RunFolder(create_run(config, runs_dir, f"lr-t{i:03d}"))
        run.write_status(state=RunState.COMPLETED, test_roc_auc=0.9, sweep="lr-sweep", created=1.8e9)

    def names() -> list[str]:
        return [RunFolder(Path(n)).label if "_" in n else n for n in at.dataframe[0].value["run"]]

    at = _page("pages/runs.py")
    assert len(names()) == 50 and at.number_input(key="runs_page").max == 2  # 61 rows: 60 runs and the sweep
    assert names()[0] == "lr-sweep (3 trials)"  # the newest first
    assert any(c.value == "rows 1-50 of 61" for c in at.caption)
    at.selectbox(key="runs_sort").set_value("test ROC-AUC").run()
    at.text_input(key="runs_search").set_value("run5").run()
    assert names() == [f"run5{i}" for i in range(9, -1, -1)]  # the best first, one page
    at.text_input(key="runs_search").set_value("").run()
    at.multiselect(key="runs_filter_sweep").set_value(["lr-sweep"]).run()
    assert sorted(names()) == ["lr-t000", "lr-t001", "lr-t002"]  # the sweep's trials, each a row
    assert not at.exception


def _csv_of_download(monkeypatch: pytest.MonkeyPatch) -> dict:
    """The callables of deferred downloads (`data=lambda: ...`) as the page registers them, by file name."""
    from streamlit.runtime.media_file_manager import MediaFileManager

    made: dict = {}
    register = MediaFileManager.add_deferred

    def keep(self, data_callable, mimetype, coordinates, file_name=None, **kwargs):  # noqa: ANN001, ANN202
        made[file_name] = data_callable
        return register(self, data_callable, mimetype, coordinates, file_name, **kwargs)

    monkeypatch.setattr(MediaFileManager, "add_deferred", keep)
    return made


def test_library_page_filters_sorts_pages_downloads_plays_and_finds_more_like_this(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from autotag.library import browse
    from autotag.library.store import ROW_FIELDS
    from tests.library.test_browse import synthetic_library

    library, music = tmp_path / "lib.sqlite", tmp_path / "music"
    synthetic_library(library, 120, folder=str(music))  # rows i: music/a{i % 10}/track{i:06d}.wav; 19, 39, ... failed
    clip = music / "a0" / "track000000.wav"  # the only file there: the others are gone
    clip.parent.mkdir(parents=True)
    sf.write(clip, tone(2.0), 16000)
    downloads = _csv_of_download(monkeypatch)
    at = _page("pages/library.py")
    at.text_input(key="library_path").set_value(str(library)).run()
    assert "120 files: **113 tagged**, 1 silent, 6 failed · 4 tags: piano, drums, guitar, fast" in at.markdown[0].value
    assert any(c.value == "rows 1-50 of 120" for c in at.caption) and at.number_input(key="library_page").max == 3
    at.number_input(key="library_page").set_value(3).run()
    assert any(c.value == "rows 101-120 of 120" for c in at.caption) and len(at.dataframe[0].value) == 20

    at.multiselect(key="library_tags").set_value(["piano", "fast"]).run()
    at.slider(key="library_min_piano").set_value(0.8).run()  # fast stays at its threshold, 0.6
    chosen = browse.Selection(tags=(("piano", 0.8), ("fast", None)))
    expected = browse.page(library, chosen, size=50)
    assert any(c.value == f"rows 1-{expected.total} of {expected.total}" for c in at.caption)  # back to page 1 of 1
    table = at.dataframe[0].value
    assert list(table["file"]) == [Path(r["path"]).name for r in expected.rows]
    assert (table["p(piano)"] >= 0.8).all() and (table["p(fast)"] >= 0.6).all()
    at.selectbox(key="library_sort").set_value("probability").run()
    at.selectbox(key="library_sort_tag").set_value("drums").run()
    at.toggle(key="library_descending").set_value(True).run()
    drums = list(at.dataframe[0].value["p(drums)"])
    assert drums == sorted(drums, reverse=True) and len(drums) == expected.total

    rows = list(csv.reader(io.StringIO(downloads["lib-selection.csv"]().decode("utf-8"))))
    assert rows[0] == [*ROW_FIELDS, "piano", "drums", "guitar", "fast"]  # the columns of `tag --out lib.csv`
    assert [Path(r[0]).name for r in rows[1:]] == list(at.dataframe[0].value["file"])  # the selection, in its order
    at.multiselect(key="library_tags").set_value([]).run()
    at.multiselect(key="library_outcomes").set_value(["failed"]).run()
    assert any(c.value == "rows 1-6 of 6" for c in at.caption)
    failed = list(csv.reader(io.StringIO(downloads["lib-selection.csv"]().decode("utf-8"))))
    assert len(failed) == 7 and {r[3] for r in failed[1:]} == {"failed"}

    at.multiselect(key="library_outcomes").set_value([]).run()
    at.selectbox(key="library_sort").set_value("path").run()
    at.toggle(key="library_descending").set_value(False).run()
    at.selectbox(key="library_clip").set_value(1).run()  # row 0: its file is there
    assert len(at.get("audio")) == 1 and at.subheader[0].value == "track000000.wav" and not at.warning
    at.toggle(key="library_similar").set_value(True).run()
    near = at.dataframe[1].value
    assert list(near["file"]) == [Path(n.path).name for n in browse.similar(library, 1, k=10)]
    at.selectbox(key="library_clip").set_value(11).run()  # row 10: its file is gone
    assert not at.get("audio")
    assert at.warning[0].value.endswith("track000010.wav' is gone: it was moved or deleted since it was tagged")
    at.multiselect(key="library_outcomes").set_value(["failed"]).run()
    assert at.selectbox(key="library_clip").value is None  # the chosen clip is off this page
    at.selectbox(key="library_clip").set_value(20).run()  # row 19 failed: its error, nothing to compare
    assert at.error[0].value == "Not tagged: not a readable audio file (x)"
    assert not at.exception


def test_library_page_says_in_one_line_what_is_no_library_and_reads_one_being_written(tmp_path: Path) -> None:
    from autotag.library.store import FAILED, Row, open_library
    from tests.library.test_browse import synthetic_library

    text = tmp_path / "notes.sqlite"
    text.write_text("not a database\n" * 100)
    at = _page("pages/library.py")
    for given, message in [
        (tmp_path / "nowhere.sqlite", "nowhere.sqlite': no such file"),
        (tmp_path, "is a folder: give a library file (`tag --out lib.sqlite`)"),
        (text, "notes.sqlite is not a library autotag wrote (not an SQLite file)"),
    ]:
        at.text_input(key="library_path").set_value(str(given)).run()
        assert len(at.error) == 1 and at.error[0].value.endswith(message) and "\n" not in at.error[0].value
        assert not at.exception
    library = tmp_path / "lib.sqlite"
    meta, _, _ = synthetic_library(library, 30)
    writer = open_library(library, meta, resume=True)  # `tag --resume` is writing it: WAL mode, locked
    try:
        writer.write(Row("/music/new.wav", 1, 2, FAILED, error="not audio"))
        at.text_input(key="library_path").set_value(str(library)).run()
        assert not at.error and "31 files" in at.markdown[0].value
        assert "`autotag tag` is writing this library" in at.info[0].value
        assert any(c.value == "rows 1-31 of 31" for c in at.caption)
    finally:
        writer.close()


def test_library_page_tags_a_folder_in_the_background_and_shows_it_filling(
    with_finished_run: Path, demo_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from autotag.library.job import LibraryJob

    music = tmp_path / "music"
    music.mkdir()
    for clip in sorted((demo_dataset / "audio").glob("*.wav"))[:12]:
        shutil.copy(clip, music / clip.name)
    at = _page("pages/library.py")
    assert at.selectbox(key="library_job_run").value == with_finished_run.name
    assert at.button(key="library_job_start").disabled  # no folder yet
    at.text_input(key="library_job_folder").set_value(str(tmp_path / "nowhere")).run()
    at.button(key="library_job_start").click().run()
    assert [e.value for e in at.error] == [f"{tmp_path / 'nowhere'}: no such file or folder"]
    monkeypatch.setenv("AUTOTAG_DATA_ROOTS", str(tmp_path / "elsewhere"))  # the page tags only inside them
    at.text_input(key="library_job_folder").set_value(str(music)).run()
    at.button(key="library_job_start").click().run()
    roots = f"must lie in AUTOTAG_DATA_ROOTS ({tmp_path / 'elsewhere'})"
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and errors[0].endswith(f"/music.sqlite': a library {roots}"), errors
    monkeypatch.delenv("AUTOTAG_DATA_ROOTS")

    at.text_input(key="library_job_folder").set_value(str(music)).run()
    out = default_runs_dir().parent / "music.sqlite"  # beside the runs folder, named after the folder
    assert at.text_input(key="library_job_out").placeholder == str(out)
    at.button(key="library_job_start").click().run()
    assert not at.error and at.text_input(key="library_path").value == str(out)
    tagging = LibraryJob(out)
    assert tagging.exists() and at.button(key="library_job_stop")  # the page follows its job
    deadline = time.monotonic() + 180
    while tagging.state().active:
        assert time.monotonic() < deadline, tagging.log.read_text()
        time.sleep(0.2)
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.success[0].value == "Tagging completed: tagged 12, skipped 0 (already in it), failed 0."
    assert "12 files" in at.markdown[0].value and any(c.value == "rows 1-12 of 12" for c in at.caption)
    assert "library_job_resume" not in [b.key for b in at.button]  # nothing to resume
