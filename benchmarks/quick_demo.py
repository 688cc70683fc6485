"""The quick demo as a new user runs it: Launch to **completed**, and the test ROC-AUC it reaches.

Each repeat launches the dashboard's Quick demo preset (`autotag.config.QUICK_DEMO`) on
the shipped demo set with `manager.launch`, the call behind the Launch button, in a fresh
trainer process (the dashboard's pre-warmed trainer saves its ~4 s of imports on top),
and times it until the run is completed. The first repeat starts with an empty feature
cache, as a new user's first run does; the others find the features cached.

    .venv/bin/python -m benchmarks.quick_demo [--repeats 3] [--data data/demo] [--max-epochs N] [--lr X]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from unittest import mock

from autotag.config import QUICK_DEMO, make_config
from autotag.data.demo import default_demo_dir
from autotag.runs import manager
from autotag.store.run_folder import RunFolder


def one_run(data: Path, runs: Path, overrides: dict) -> tuple[float, dict]:
    """Seconds from launch to completed, and the run's metrics.json."""
    config = make_config(data=str(data), **{**QUICK_DEMO, **overrides})
    start = time.perf_counter()
    run = manager.launch(config, runs)
    while not (state := manager.derive_state(run)).final:
        time.sleep(0.1)
    seconds = time.perf_counter() - start
    if state != "completed":
        raise SystemExit(f"{run.name} ended {state}: {RunFolder(run).read_status().error}")
    return seconds, json.loads(RunFolder(run).metrics.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data", type=Path, default=default_demo_dir(), help="the shipped demo set by default")
    parser.add_argument("--max-epochs", type=int, default=None, help="override the preset (to compare schedules)")
    parser.add_argument("--lr", type=float, default=None, help="override the preset")
    args = parser.parse_args()
    overrides = {k: v for k, v in (("max_epochs", args.max_epochs), ("lr", args.lr)) if v is not None}
    with (
        tempfile.TemporaryDirectory() as tmp,
        mock.patch.dict(os.environ, {"AUTOTAG_CACHE_DIR": f"{tmp}/cache", "AUTOTAG_WARM": "0"}),
    ):
        rows = [one_run(args.data, Path(tmp) / "runs", overrides) for _ in range(args.repeats)]
    print(f"quick demo {json.dumps({**QUICK_DEMO, **overrides})} on {args.data}")
    for i, (seconds, metrics) in enumerate(rows):
        cache = "features computed" if i == 0 else "features cached"
        print(
            f"  run {i + 1} ({cache}): {seconds:.1f} s, {metrics['epochs']} epochs, "
            f"best val_loss {metrics['best_val_loss']:.3f}, test ROC-AUC {metrics['roc_auc_macro']:.3f}, "
            f"PR-AUC {metrics['pr_auc_macro']:.3f}"
        )
    seconds = [s for s, _ in rows]
    median = statistics.median(seconds)
    print(f"launch to completed: median {median:.1f} s (min {min(seconds):.1f}, max {max(seconds):.1f})")


if __name__ == "__main__":
    main()
