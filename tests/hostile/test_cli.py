"""The command line's options and the files it reads (config.yaml): refused in one line, exit 2,
nothing written, however the file is made (alias bombs, binary, nesting, odd keys)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autotag.cli.main import main
from autotag.config import ConfigError, load_config


def _bomb(levels: int, width: int = 9, under: str = "") -> str:
    """A "billion laughs" YAML: each level a list of `width` aliases of the level below."""
    lines = [f"{under}a0: &a0 [{', '.join(['lol'] * width)}]"]
    for i in range(1, levels):
        lines.append(f"{under}a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


def _fit(capsys: pytest.CaptureFixture, config: Path, runs: Path) -> tuple[int, str]:
    code = main(["fit", "--config", str(config), "--runs-dir", str(runs)])
    return code, capsys.readouterr().err


CONFIGS = {
    "alias bomb, 9 levels (356 bytes)": _bomb(9),
    "alias bomb under a field": "data: /tmp\nmodel: tiny\nextra:\n" + _bomb(9, under="  "),
    "recursive alias": "data: /tmp\nloop: &a [*a]\n",
    "nested 5,000 deep": "a: " + "[" * 5000 + "]" * 5000 + "\n",
    "binary": bytes(range(256)).decode("latin-1"),
    "UTF-16": "\ufeffdata: /tmp\n",
    "NUL bytes": "data: /tmp\x00\n",
    "300 KB": "data: /tmp\n# " + "x" * 300_000 + "\n",
    "not a mapping": "- data\n- /tmp\n",
    "number keys": "1: 2\ndata: /tmp\n",
    "python tag": "data: !!python/object/apply:os.system ['true']\n",
    "not YAML": "data: [unclosed\n",
    "time budget .nan": "data: /tmp\nmax_minutes: .nan\n",
    "time budget .inf": "data: /tmp\nmax_minutes: .inf\n",
    "backbone factor .nan": "data: /tmp\ninit_from: /tmp\nbackbone_lr_factor: .nan\n",
    "level neither relative nor absolute": "data: /tmp\nlevel: loud\n",
    "tempo not a yes or no": "data: /tmp\ntempo: maybe\n",
}
ENCODINGS = {"binary": "latin-1", "UTF-16": "utf-16"}


@pytest.mark.parametrize("name", CONFIGS)
def test_a_hostile_config_file_is_refused_in_one_line(name: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = tmp_path / "config.yaml"
    config.write_bytes(CONFIGS[name].encode(ENCODINGS.get(name, "utf-8")))
    start = time.monotonic()
    code, err = _fit(capsys, config, tmp_path / "runs")
    assert time.monotonic() - start < 5  # measured: well under 0.1 s each (README)
    assert code == 2, err
    assert err.startswith("autotag: error: ") and "Traceback" not in err
    assert len(err) < 600, err[:2000]  # the value is quoted by a short prefix, if at all
    assert not (tmp_path / "runs").exists()


def test_a_value_under_the_expansion_bound_is_quoted_by_a_short_prefix(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """What remains after the bound (a few thousand values) must not flood the terminal either."""
    config = tmp_path / "config.yaml"
    config.write_text("data: /tmp\nmodel: [" + ", ".join(["x" * 50] * 3000) + "]\nlr: " + "9" * 5000 + "\n")
    code, err = _fit(capsys, config, tmp_path / "runs")
    assert code == 2 and len(err) < 600, err[:2000]


def test_the_alias_bomb_is_refused_at_once_as_a_process(tmp_path: Path) -> None:
    """The reported probe as it was run: 120 s and 2.5 GB before; now exit 2 at once."""
    config = tmp_path / "bomb.yaml"
    config.write_text(_bomb(9, under=""))
    done = subprocess.run(
        [sys.executable, "-m", "autotag", "fit", "--config", str(config), "--runs-dir", str(tmp_path / "runs")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr[-2000:]
    assert "aliases" in done.stderr


_YAMLABLE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=400) | _YAMLABLE.map(lambda v: yaml.safe_dump(v)))
def test_any_text_as_a_config_is_a_config_or_a_config_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        load_config(path)
    except ConfigError as exc:
        assert len(str(exc)) < 3000
