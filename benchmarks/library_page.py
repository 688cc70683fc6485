"""The Library page at 100,000 rows: `library.browse`'s queries and the page's script run.

A synthetic library in the documented schema (docs/library.md): 100,000 files, 12 tags,
random probabilities, float16 embeddings of 512 values (a `shortchunk_cnn`'s width), every
20th file failed and every 50th of the rest silent (`tests.library.test_browse.synthetic_library`).
Each query is timed best-of-N in a fresh connection, as the page makes them: the first
page unfiltered, filtered by two tags at their thresholds, sorted by a tag's probability,
a late page, the count, a text search, more like this, and the CSV of a two-tag selection.
Then the page itself (AppTest, best of 5 script runs) with the library open, and with two
tags chosen and sorted by one.

    .venv/bin/python -m benchmarks.library_page [--files 100000] [--width 512] [--index SQL]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from autotag.library import browse
from autotag.library.browse import Selection
from tests.library.test_browse import synthetic_library

ROOT = Path(__file__).resolve().parent.parent
LABELS = ["piano", "drums", "guitar", "bass", "vocals", "strings", "fast", "slow", "loud", "quiet", "rock", "jazz"]


def best_of(call: Callable[[], object], repeats: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = call()
        best = min(best, time.perf_counter() - start)
    return best, result


def queries(out: Path, repeats: int) -> dict[str, float]:
    two_tags = Selection(tags=(("guitar", None), ("slow", None)))  # each at its threshold 0.5: a quarter of the rows
    rare = Selection(tags=(("guitar", 0.9), ("slow", 0.9)))  # 1 % of the rows
    by_drums = Selection(sort="probability", sort_tag="drums", descending=True)
    total = browse.count(out)
    last = -(-total // 50)
    timed = {
        "facts (meta, labels, counts by outcome)": lambda: browse.read_facts(out),
        "count, unfiltered": lambda: browse.count(out),
        "first page, unfiltered (by path)": lambda: browse.page(out),
        "first page, two tags at their thresholds": lambda: browse.page(out, two_tags),
        "count, two tags at their thresholds": lambda: browse.count(out, two_tags),
        "first page, two tags at 0.9": lambda: browse.page(out, rare),
        "first page, sorted by a tag's probability": lambda: browse.page(out, by_drums),
        "first page, two tags, sorted by a third's probability": lambda: browse.page(
            out, Selection(tags=two_tags.tags, sort="probability", sort_tag="drums", descending=True)
        ),
        "first page, two tags at 0.9, sorted by a third's probability": lambda: browse.page(
            out, Selection(tags=rare.tags, sort="probability", sort_tag="drums", descending=True)
        ),
        "first page, sorted by duration": lambda: browse.page(out, Selection(sort="duration", descending=True)),
        f"late page ({last} of {last}), by path": lambda: browse.page(out, Selection(), last),
        f"late page ({last} of {last}), by a tag's probability": lambda: browse.page(out, by_drums, last),
        f"late page ({last} of {last}), by duration": lambda: browse.page(out, Selection(sort="duration"), last),
        "first page, text search in the path": lambda: browse.page(out, Selection(text="track0421")),
        "more like this (k=10, brute force)": lambda: browse.similar(out, 1, k=10),
        "CSV of two tags at their thresholds": lambda: browse.selection_csv(out, two_tags),
        "CSV of everything": lambda: browse.selection_csv(out),
    }
    results = {}
    for name, call in timed.items():
        seconds, value = best_of(call, repeats if "CSV" not in name else 1)
        results[f"{name} (= {value})" if name.startswith("count") else name] = seconds
    return results


def page_script(out: Path, repeats: int = 5) -> dict[str, float]:
    """Best of `repeats` script runs of the Library page with `out` open, and filtered and sorted."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("pages/library.py").run()
    at.text_input(key="library_path").set_value(str(out)).run()
    assert not at.exception and not at.error, [e.value for e in (*at.exception, *at.error)]
    results = {}
    results["Library page, library open (script run)"], _ = best_of(at.run, repeats)
    at.multiselect(key="library_tags").set_value(["guitar", "slow"]).run()
    at.selectbox(key="library_sort").set_value("probability").run()
    at.selectbox(key="library_sort_tag").set_value("drums").run()
    results["Library page, two tags, sorted by a tag (script run)"], _ = best_of(at.run, repeats)
    at.selectbox(key="library_clip").select_index(1).run()
    at.toggle(key="library_similar").set_value(True).run()
    results["Library page, a clip and more like this (script run)"], _ = best_of(at.run, repeats)
    assert not at.exception, [e.value for e in at.exception]
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--width", type=int, default=512, help="embedding width")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--index", help="a CREATE INDEX statement to add to the library before timing")
    parser.add_argument("--no-page", action="store_true", help="time the queries only")
    args = parser.parse_args()
    os.chdir(ROOT)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        out = tmp / "library.sqlite"
        start = time.perf_counter()
        synthetic_library(out, args.files, LABELS, width=args.width, folder=str(tmp / "music"), index=args.index)
        made = time.perf_counter() - start
        print(
            f"{args.files} files, {len(LABELS)} tags, {args.width}-wide embeddings: "
            f"{out.stat().st_size / 1e6:.0f} MB, made in {made:.1f} s"
        )
        results = queries(out, args.repeats)
        if not args.no_page:
            os.environ["AUTOTAG_RUNS_DIR"] = str(tmp / "runs")
            results.update(page_script(out, args.repeats))
    print(f"Best of {args.repeats} (CSV: one run), seconds:")
    for name, seconds in results.items():
        print(f"  {name:<66} {seconds:7.3f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
