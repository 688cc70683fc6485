"""`similar`: do a clip's nearest tracks share its tags, and at what size would an index pay?

Tags: trains the dashboard's quick demo on `--data` (default the demo set) unless `--run`
names a finished run, tags every clip of the data set into a library (`tag_library`, as
`autotag tag --out` does), then asks `browse.similar` for the `--k` nearest tracks of each
clip of the test split (clips the run never trained on; their neighbours come from the whole
set). It compares the data set's own tags (tags.csv: what the clips hold, not what the
model said) of each clip with its neighbours': the share of neighbours with at least one tag
in common, the mean Jaccard overlap of the two tag sets, and both over every pair of
different clips (chance).

Speed: the brute force of `similar` (every stored float16 embedding read from SQLite and
scored with numpy) per query at `--sizes` rows of `--width` values (512: `tiny`'s and
`shortchunk_cnn`'s), against numpy over the same vectors held in memory, and faiss when it
can be imported (`pip install faiss-cpu`; not a requirement of autotag): an exact
inner-product index (IndexFlatIP) and an approximate one (IndexHNSWFlat, M 32, efSearch 128)
with its build time and its recall of the exact 10 nearest, each with one thread (a query at
a time, as `similar` answers one). The synthetic vectors are random (Gaussian): the hardest
case for an approximate index, whose recall on real, clustered embeddings is higher.

    .venv/bin/python -m benchmarks.similarity [--run RUN | --data data/demo] [--k 5] [--sizes 10000 100000 1000000]
"""

from __future__ import annotations

import argparse
import itertools
import os
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import numpy as np

from autotag.config import QUICK_DEMO
from autotag.data.demo import default_demo_dir
from autotag.data.formats import load_dataset
from autotag.library import browse
from autotag.library.store import open_library
from autotag.library.tag import library_meta, tag_library
from autotag.serving.decide import decision_thresholds, tuned_thresholds
from autotag.serving.tagger import Tagger
from benchmarks.robustness import train
from tests.library.test_browse import synthetic_library


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


def tag_agreement(run: Path, data: Path, k: int, tmp: Path) -> None:
    dataset = load_dataset(data)
    truth = {str(c.path): set(c.tags) for c in dataset.clips}
    tagger = Tagger.load(run, device="cpu")
    thresholds = decision_thresholds(tagger.labels, tuned_thresholds(run))
    out = tmp / "lib.sqlite"
    start = time.perf_counter()
    with open_library(out, library_meta(tagger, run, thresholds), resume=False) as lib:
        summary = tag_library(tagger, lib, [c.path for c in dataset.clips], thresholds)
    print(f"{run.name}: {summary.tagged} clips tagged into a library in {time.perf_counter() - start:.0f} s")
    with closing(sqlite3.connect(out)) as db:
        ids = dict(db.execute("SELECT path, id FROM files"))
    queries = [str(c.path) for c in dataset.clips if c.split == "test"]
    shared, overlap = [], []
    for path in queries:
        for n in browse.similar(out, ids[path], k):
            shared.append(bool(truth[path] & truth[n.path]))
            overlap.append(jaccard(truth[path], truth[n.path]))
    pairs = list(itertools.combinations(truth.values(), 2))
    chance_shared = statistics.mean(bool(a & b) for a, b in pairs)
    chance_overlap = statistics.mean(jaccard(a, b) for a, b in pairs)
    print(
        f"{len(queries)} test clips, {k} nearest each: {100 * statistics.mean(shared):.0f} % share a tag "
        f"(chance {100 * chance_shared:.0f} %), Jaccard overlap {statistics.mean(overlap):.2f} "
        f"(chance {chance_overlap:.2f}, {statistics.mean(overlap) / chance_overlap:.1f}x)"
    )


def best_of(fn: Callable[[], object], repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def speed(sizes: list[int], width: int, tmp: Path) -> None:
    try:
        import faiss

        faiss.omp_set_num_threads(1)
    except ImportError:
        faiss = None
        print("faiss is not importable: its rows are left out (pip install faiss-cpu)")
    for size in sizes:
        print(speed_at(size, width, tmp / f"synthetic-{size}.sqlite", faiss), flush=True)


def speed_at(size: int, width: int, out: Path, faiss: object) -> str:
    """One line: the per-query times at `size` rows (and those of faiss, the module, when not None)."""
    start = time.perf_counter()
    _, _, stored = synthetic_library(out, size, width=width, failed_every=0, silent_every=0)
    made = time.perf_counter() - start
    vectors = stored.astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    query = vectors[0]
    line = f"{size:>9} rows ({out.stat().st_size / 2**20:.0f} MB, made in {made:.0f} s): "
    line += f"similar {best_of(lambda: browse.similar(out, 1, 10)) * 1000:.0f} ms; "
    line += f"numpy in memory {best_of(lambda: np.argpartition(-(vectors @ query), 10)[:10]) * 1000:.1f} ms"
    if faiss is not None:
        flat = faiss.IndexFlatIP(width)
        flat.add(vectors)
        line += f"; faiss flat {best_of(lambda: flat.search(query[None], 10)) * 1000:.1f} ms"
        start = time.perf_counter()
        hnsw = faiss.IndexHNSWFlat(width, 32, faiss.METRIC_INNER_PRODUCT)
        hnsw.add(vectors)
        built = time.perf_counter() - start
        hnsw.hnsw.efSearch = 128
        probes = vectors[:: max(1, size // 100)][:100]
        _, exact = flat.search(probes, 10)
        _, approx = hnsw.search(probes, 10)
        recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact)])
        per_query = best_of(lambda: hnsw.search(query[None], 10)) * 1000
        line += f", HNSW {per_query:.2f} ms (built in {built:.0f} s, recall@10 {recall:.2f})"
    out.unlink()
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, help="a finished run (default: train the quick demo on --data)")
    parser.add_argument("--data", type=Path, default=default_demo_dir())
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--no-tags", action="store_true", help="speed only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if not args.no_tags:
            os.environ.setdefault("AUTOTAG_CACHE_DIR", str(tmp / "cache"))
            run = args.run.resolve() if args.run else train(args.data.resolve(), tmp, QUICK_DEMO["model"], 20)
            tag_agreement(run, args.data.resolve(), args.k, tmp)
        speed(args.sizes, args.width, tmp)


if __name__ == "__main__":
    main()
