"""A report's saved progress: taken back only for the request it was scored for."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from autotag.robustness.report import Progress


def test_progress_comes_back_for_its_own_request_only(tmp_path: Path) -> None:
    path = tmp_path / "progress.npz"
    saved = Progress(request='{"seed": 3}', clips=["a", "b"], skipped={"c": "not audio"}, seconds={"gain": 1.5})
    saved.probs = {"clean": [np.array([0.1, 0.9]), np.array([0.2, 0.8])], "gain/-20 dB": [np.zeros(2), np.ones(2)]}
    saved.save(path)
    back = Progress.load(path, '{"seed": 3}')
    assert back is not None
    assert (back.clips, back.skipped, back.seconds) == (["a", "b"], {"c": "not audio"}, {"gain": 1.5})
    np.testing.assert_array_equal(np.stack(back.probs["gain/-20 dB"]), [[0, 0], [1, 1]])
    assert Progress.load(path, '{"seed": 4}') is None  # another request starts over
    assert Progress.load(tmp_path / "missing.npz", '{"seed": 3}') is None
    path.write_bytes(b"torn")
    assert Progress.load(path, '{"seed": 3}') is None
