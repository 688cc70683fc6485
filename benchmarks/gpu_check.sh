#!/bin/bash
# The GPU checks of the performance issue, as one script for a lent GPU machine
# (about 4 minutes on an H100/H200). Prints its figures; with $OUT set, also saves them there.
#   1. the feature cache built with the front end on the GPU equals the CPU-built one;
#   2. training throughput of shortchunk_resnet, `fit` against a plain loop, bf16, with the
#      share of step time spent waiting for data;
#   3. a launch through the pre-warmed trainer (forked after torch was imported) trains on CUDA.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$(mktemp -d)}
PY=${PYTHON:-python}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
if ! $PY -c "import soundfile, pydantic" 2>/dev/null && [ -d .whl ]; then  # a bare image: wheels carried along
    pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PYTHONPATH
fi
nvidia-smi -L
WORK=$(mktemp -d)
export AUTOTAG_CACHE_DIR=$WORK/cache AUTOTAG_RUNS_DIR=$WORK/runs
$PY -m autotag demo-data "$WORK/demo" --clips 300 >/dev/null

echo "== 1. feature cache: front end on the GPU vs the CPU"
timeout 300 $PY - "$WORK/demo" <<'PY' 2>&1 | tee "$OUT/cache.txt"
import sys, time
import numpy as np
from autotag.data.cache import build_cache
from autotag.config import make_config
from autotag.data.prepare import open_dataset
config = make_config(data=sys.argv[1], model="shortchunk_resnet")
clips = open_dataset(config)[1].clips
times, caches = {}, {}
for device in ("cpu", "cuda"):
    start = time.perf_counter()
    caches[device] = build_cache(clips, config.feature_settings(), root=f"{sys.argv[1]}-{device}", workers=4, device=device)
    times[device] = time.perf_counter() - start
diff = np.abs(np.asarray(caches["cuda"].mels, np.float32) - np.asarray(caches["cpu"].mels, np.float32)).max()
print(f"{len(clips)} clips: cpu {times['cpu']:.2f} s, gpu {times['cuda']:.2f} s (ratio {times['cuda'] / times['cpu']:.2f}); max abs diff {diff:.4f} dB")
PY

echo "== 2. throughput, shortchunk_resnet, bf16"
timeout 400 $PY -m benchmarks.train_throughput --model shortchunk_resnet --accelerator gpu --precision bf16-mixed \
    --num-workers 4 --epochs 4 --data "$WORK/demo" 2>&1 | grep -v Warning | tail -15 | tee "$OUT/throughput.txt"

echo "== 3. a launch forked from the pre-warmed trainer, on CUDA"
timeout 300 $PY - "$WORK/demo" <<'PY' 2>&1 | tee "$OUT/warm.txt"
import json, os, sys, time
from pathlib import Path
from autotag.runs import manager
from autotag.config import make_config
runs = Path(os.environ["AUTOTAG_RUNS_DIR"])
manager.warm_up(runs)
info_file = runs / ".warm" / "process.json"
while not (info_file.exists() and json.loads(info_file.read_text()).get("ready")):
    time.sleep(0.05)
zygote = json.loads(info_file.read_text())["pid"]
start = time.perf_counter()
run = manager.launch(make_config(data=sys.argv[1], model="shortchunk_cnn", accelerator="gpu", max_epochs=2))
parent = None
while not manager.derive_state(run).final:
    pid = json.loads((run / "status.json").read_text()).get("pid")
    if pid and parent is None:
        parent = int(next(l.split()[1] for l in open(f"/proc/{pid}/status") if l.startswith("PPid:")))
    time.sleep(0.1)
status = json.loads((run / "status.json").read_text())
metrics = json.loads((run / "metrics.json").read_text()) if (run / "metrics.json").exists() else {}
print(f"state {status['state']}, device {metrics.get('device')}, forked from the warm trainer: {parent == zygote}, "
      f"{time.perf_counter() - start:.1f} s, test ROC-AUC {metrics.get('roc_auc_macro')}")
if status["state"] != "completed":
    print((run / "train.log").read_text()[-3000:])
PY
