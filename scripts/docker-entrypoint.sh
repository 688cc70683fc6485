#!/bin/sh
# Container start. `docker run IMAGE autotag ARGS...` runs that command (e.g. `autotag serve`);
# otherwise: make the demo data set once (in the /data volume), then serve the dashboard.
set -eu
if [ "${1:-}" = "autotag" ]; then
  shift
  exec python -m autotag "$@"
fi
if [ ! -f "$AUTOTAG_DEMO_DIR/tags.csv" ]; then
  python -m autotag demo-data "$AUTOTAG_DEMO_DIR" --clips 300 --seed 0
fi
exec streamlit run app.py --server.address 0.0.0.0 --server.port 8501 --server.headless true "$@"
