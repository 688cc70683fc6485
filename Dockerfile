# autotag dashboard. Build: docker build -t autotag .
# Run:   docker run -p 8501:8501 -v autotag-data:/data autotag   (then open http://localhost:8501)
# The HTTP API: docker run -p 8000:8000 -v autotag-data:/data -v $PWD/token:/token:ro autotag \
#          autotag serve --run RUN --host 0.0.0.0 --token-file /token   (README, "Serving over HTTP")
# /data holds runs/ (AUTOTAG_RUNS_DIR), the feature cache and the demo data set; keep it in a volume.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    AUTOTAG_RUNS_DIR=/data/runs \
    AUTOTAG_CACHE_DIR=/data/cache \
    AUTOTAG_DEMO_DIR=/data/demo

# FluidSynth and two General MIDI soundfonts for the demo set's instruments (see scripts/setup.sh).
RUN apt-get update \
    && apt-get install -y --no-install-recommends libfluidsynth3 fluid-soundfont-gm timgm6mb-soundfont \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 10001 autotag && mkdir -p /data && chown autotag:autotag /data
WORKDIR /app

# Dependencies first: this layer is rebuilt only when requirements.txt changes.
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY pyproject.toml README.md app.py ./
COPY .streamlit/ .streamlit/
COPY autotag/ autotag/
COPY pages/ pages/
COPY scripts/docker-entrypoint.sh scripts/
RUN pip install --no-deps --no-build-isolation -e .

USER autotag
VOLUME ["/data"]
EXPOSE 8501 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import urllib.request, sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4).read() != b'ok')"
ENTRYPOINT ["sh", "scripts/docker-entrypoint.sh"]
