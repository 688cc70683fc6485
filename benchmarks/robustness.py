"""Wall time of a full robustness report of the demo run, with each perturbation's share.

Trains the dashboard's quick demo (`tiny` on the shipped demo set) unless `--run` names a
finished run, then makes its report with every perturbation at every strength, in this
process as `python -m autotag robustness --run RUN` would, and prints the wall time, the
clips, and the seconds each perturbation (and decoding, and the clean audio) took.

    .venv/bin/python -m benchmarks.robustness [--run RUN | --data data/demo] [--model tiny] [--max-epochs 20]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from autotag.config import QUICK_DEMO
from autotag.data.demo import default_demo_dir
from autotag.robustness import job
from autotag.robustness.report import make_report


def train(data: Path, runs: Path, model: str, max_epochs: int) -> Path:
    from autotag.config import make_config
    from autotag.training.fit import fit

    config = make_config(data=str(data), **{**QUICK_DEMO, "model": model, "max_epochs": max_epochs})
    run = runs / "demo"
    fit(config, run, log_file=False)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, help="a finished run (default: train the quick demo first)")
    parser.add_argument("--data", type=Path, default=default_demo_dir())
    parser.add_argument("--model", default=QUICK_DEMO["model"], help="the model the demo run trains")
    parser.add_argument("--max-epochs", type=int, default=QUICK_DEMO["max_epochs"], help="of the demo run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("AUTOTAG_CACHE_DIR", str(Path(tmp) / "cache"))
        run = args.run.resolve() if args.run else train(args.data.resolve(), Path(tmp), args.model, args.max_epochs)
        start = time.perf_counter()
        report = make_report(run)
        seconds = time.perf_counter() - start
        status = job.ReportFolder(run).read_status()
    assert report is not None
    conditions = 1 + sum(len(v) for k, v in report.items() if k != "clean")
    print(f"{run.name}: {status.total} clips x {conditions} conditions in {seconds:.1f} s (wall, 2 cores)")
    for name, spent in sorted(status.seconds.items(), key=lambda kv: -kv[1]):
        print(f"  {name:>13}: {spent:6.1f} s ({100 * spent / seconds:4.1f} %)")
    print(f"clean ROC-AUC {report['clean']['roc_auc_macro']:.3f}; worst:")
    rows = [(n, s, r["roc_auc_macro"]) for n, by in report.items() if n != "clean" for s, r in by.items()]
    for name, strength, auc in sorted(rows, key=lambda r: r[2])[:5]:
        print(f"  {name} {strength}: {auc:.3f}")


if __name__ == "__main__":
    main()
