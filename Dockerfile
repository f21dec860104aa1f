# syntax=docker/dockerfile:1.7
# The image the Helm chart runs: the `qwatch` CLI on a slim Python 3.11, as UID/GID 10001, with git (the OpenSSF
# ingestor mirrors a git repository) and no Java: the embedded Kafka broker is for laptops and CI only; in
# Kubernetes the chart always points at a real cluster (config.kafka_bootstrap).
#
# Build:  docker build -t quarantine-watch:0.1.0 .          (needs BuildKit for the bind mount below)
# Run:    docker run --rm -e QWATCH_KAFKA_BOOTSTRAP=kafka:9092 -e QWATCH_METRICS_PORT=9464 -p 9464:9464 \
#             quarantine-watch:0.1.0 ingest pypi-journal
#
# Base image: pinned by full version tag. The release pipeline must also pin the digest, on both FROM lines:
#   docker buildx imagetools inspect python:3.11.14-slim-bookworm --format '{{json .Manifest.Digest}}'
#   -> PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:<digest>
# (not written here: the machines this repository is developed on cannot reach a container registry to read it,
# and a made-up digest would only break the build).
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# ---------------------------------------------------------------------------------------------------- builder
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY qwatch ./qwatch
COPY app ./app
COPY testing ./testing
COPY ingestors ./ingestors
COPY processors ./processors
COPY subscribers ./subscribers
# One wheel for the project and one per dependency; the runtime stage installs them offline.
RUN python -m pip wheel --wheel-dir /wheels .

# ---------------------------------------------------------------------------------------------------- runtime
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="quarantine-watch" \
      org.opencontainers.image.description="Streams PyPI quarantines and OpenSSF malicious-package reports through Kafka" \
      org.opencontainers.image.licenses="Apache-2.0"

# git for GitPython (OpenSSF ingestor). Not version-pinned on purpose (hadolint DL3008): security updates of the
# pinned base's Debian release are wanted; reproducibility comes from the base digest and the wheel set.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends git \
 && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 qwatch \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin qwatch

# MALLOC_ARENA_MAX=2: the PyPI sweeps' worker threads would otherwise spread allocations over up to 8 glibc arenas
# per core, whose freed memory stays in RSS (bench/soak.py); `qwatch up` sets the same for its children.
ENV VIRTUAL_ENV=/opt/qwatch \
    MALLOC_ARENA_MAX=2 \
    PATH=/opt/qwatch/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/tmp \
    QWATCH_CACHE_DIR=/var/cache/qwatch

# Wheels come in through a bind mount, so they never land in a layer; pip is removed from the venv afterwards.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python -m venv "$VIRTUAL_ENV" \
 && "$VIRTUAL_ENV/bin/pip" install --no-index --find-links /wheels quarantine-watch \
 && "$VIRTUAL_ENV/bin/pip" uninstall -y pip \
 && install -d -o 10001 -g 10001 -m 0750 /var/cache/qwatch /var/lib/qwatch

# Numeric, so the kubelet can verify runAsNonRoot without reading /etc/passwd.
USER 10001:10001
WORKDIR /var/lib/qwatch
EXPOSE 9464
ENTRYPOINT ["qwatch"]
CMD ["--help"]
