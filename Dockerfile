# syntax=docker/dockerfile:1
# One image per v2v service, from the one uv workspace:
#   docker build --build-arg SERVICE=intake -t v2v-intake .
# SERVICE is one of: intake manufacturing logistics release infusion projection.
# The entry point is `python -m v2v_${SERVICE}`; extra arguments go to it
# (e.g. `docker run ... v2v-logistics issue-courier-token --courier C-17 ...`).
# The same image also runs `v2v pki ...` and `python -m v2v_platform.healthcheck` (see
# docker-compose.yml). Checked by tools/deploy_check.sh (BuildKit's Dockerfile linter).

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# --- builder: locked dependencies, generated protobuf code ---------------------------------
FROM ${PYTHON_IMAGE} AS builder
ARG SERVICE
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
RUN test -n "${SERVICE}" \
    || { echo "build with --build-arg SERVICE=<intake|manufacturing|logistics|release|infusion|projection>" >&2; exit 1; }
RUN pip install uv==0.13.9
WORKDIR /app
COPY . .
# Everything from uv.lock (the dev group brings grpcio-tools + mypy-protobuf for the protos),
# generate libs/contracts/src/v2v/** (never committed), then keep only what this one service
# needs at run time: `uv sync` is exact, so the second run removes the dev group and the
# other services.
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen \
    && .venv/bin/python tools/gen_proto.py \
    && uv sync --frozen --no-dev --package "v2v-${SERVICE}"
RUN .venv/bin/python -m compileall -q libs/platform/src libs/contracts/src "services/${SERVICE}/src" \
    && .venv/bin/python -c "import importlib.util, sys; m = 'v2v_${SERVICE}.__main__'; \
sys.exit(0 if importlib.util.find_spec(m) else f'no module {m}: is SERVICE=${SERVICE} a v2v service with a __main__?')"

# --- runtime: the virtual environment and the sources, nothing else ------------------------
FROM ${PYTHON_IMAGE} AS runtime
ARG SERVICE
LABEL org.opencontainers.image.title="v2v-${SERVICE}" \
      org.opencontainers.image.description="Vein-to-Vein ${SERVICE} service"
RUN groupadd --system --gid 10001 v2v \
    && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
       --shell /usr/sbin/nologin v2v \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/v2v /var/lib/v2v/pki /var/lib/v2v/data
ENV PATH=/app/.venv/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SERVICE_MODULE=v2v_${SERVICE} \
    V2V_PKI_DIR=/var/lib/v2v/pki \
    V2V_HTTP_HOST=0.0.0.0
WORKDIR /app
# Owned by root and not writable by the service user; workspace members are editable
# installs, so their src/ directories are what the venv imports.
COPY --from=builder /app/.venv /app/.venv
COPY --from=builder /app/libs/platform/src /app/libs/platform/src
COPY --from=builder /app/libs/contracts/src /app/libs/contracts/src
COPY --from=builder /app/services/${SERVICE}/src /app/services/${SERVICE}/src
USER 10001:10001
# Exec form; the shell only expands the module name and then replaces itself (PID 1 is python,
# which handles SIGTERM).
ENTRYPOINT ["/bin/sh", "-c", "exec python -m \"$SERVICE_MODULE\" \"$@\"", "v2v-service"]
