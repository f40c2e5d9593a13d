# syntax=docker/dockerfile:1
# Durable's engine image: `durable start` (API, dashboard, scheduler, workers) by default, `durable worker`
# with that command. Three stages: the dashboard (Node), the engine wheel (with the dashboard inside), and
# a slim runtime that installs only the wheel and runs as an unprivileged user.
#
#   docker build -t durable-engine:0.1.0 .
#   docker build --build-arg DURABLE_EXTRAS=otel -t durable-engine:0.1.0-otel .   # with OpenTelemetry
#
# No secret is baked in: DATABASE_URL and DURABLE_ADMIN_TOKEN come from the environment at run time
# (docker-compose.yml, deploy/kubernetes/). See docs/self-hosting.md.

# 1. The dashboard: vite writes into ../src/durable/dashboard/static (dashboard/vite.config.ts).
FROM node:20.20.2-bookworm-slim AS dashboard
WORKDIR /build/dashboard
COPY dashboard/package.json dashboard/package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY dashboard/ ./
RUN npm run build

# 2. The engine wheel, built from the sources with the dashboard already in place.
FROM python:3.11.14-slim-bookworm AS wheel
WORKDIR /build
# setup.py wires in build_hooks/ (it builds the dashboard only when static/ is missing: here it is not);
# the version comes from VERSION.
COPY pyproject.toml setup.py VERSION README.md ./
COPY build_hooks/ build_hooks/
COPY src/ src/
COPY --from=dashboard /build/src/durable/dashboard/static/ src/durable/dashboard/static/
RUN pip wheel --no-cache-dir --disable-pip-version-check --no-deps --wheel-dir /wheels .

# 3. The runtime: the wheel and its pinned dependencies, nothing else (no compiler, no Node, no curl).
FROM python:3.11.14-slim-bookworm AS engine
ARG DURABLE_EXTRAS=""
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# A numeric uid, so Kubernetes' runAsNonRoot can verify it without looking the name up.
RUN groupadd --system --gid 10001 durable \
    && useradd --system --uid 10001 --gid 10001 --home-dir /home/durable --create-home \
       --shell /usr/sbin/nologin durable \
    && install -d -o 10001 -g 10001 -m 0700 /var/lib/durable
COPY --from=wheel /wheels/ /tmp/wheels/
RUN wheel="$(ls /tmp/wheels/durable_engine-*.whl)" \
    && pip install "${wheel}${DURABLE_EXTRAS:+[$DURABLE_EXTRAS]}" \
    && rm -rf /tmp/wheels
USER 10001:10001
WORKDIR /home/durable
# Bind every interface inside the container: `durable start` then refuses to start without
# DURABLE_ADMIN_TOKEN (src/durable/config.py, exposure_problem). The embedded Postgres (no DATABASE_URL,
# for a trial only) keeps its data in /var/lib/durable/pgdata: mount a volume there.
ENV DURABLE_HOST=0.0.0.0 \
    PORT=3030 \
    DURABLE_PG_DIR=/var/lib/durable/pgdata
EXPOSE 3030
# slim has no curl: python's urllib. Any error (refused, timeout, a 503 while the database is not
# ready) exits 1, which Docker counts as unhealthy. `durable worker` serves no HTTP: override this there.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '3030'), timeout=4)"]
STOPSIGNAL SIGTERM
CMD ["durable", "start"]
