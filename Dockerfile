# syntax=docker/dockerfile:1
# Kuzot in a container: the built wheel, installed as users install it (no checkout, no
# editable install), run by an unprivileged user.  The database lives in the /data volume.
#   docker build -t kuzot .
#   docker run --rm -v kuzot-data:/data -e KUZOT_ACCEPT_RISKS=1 kuzot run
#   docker run --rm -v kuzot-data:/data kuzot show
# The same image runs the collector (docs/collector.md), hence the PostgreSQL driver:
#   docker run --rm -p 127.0.0.1:8080:8080 kuzot serve --db postgresql+psycopg://... --listen 0.0.0.0:8080

# --- stage 1: build the wheel from the sources ---------------------------------------------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY probe ./probe
COPY analysis ./analysis
RUN pip wheel --no-deps --wheel-dir /dist .

# --- stage 2: the runtime image, with only the installed wheel -----------------------------
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    KUZOT_DATA_DIR=/data \
    KUZOT_CONFIG_DIR=/data/config
COPY --from=build /dist/ /tmp/dist/
RUN set -eux; \
    wheel="$(ls /tmp/dist/kuzot-*.whl)"; \
    pip install "${wheel}[postgres,collector]"; \
    rm -rf /tmp/dist; \
    useradd --create-home --uid 10001 --shell /usr/sbin/nologin kuzot; \
    mkdir -p /data; \
    chown kuzot:kuzot /data

USER kuzot
WORKDIR /data
VOLUME ["/data"]
# The collector's port (kuzot serve --listen 0.0.0.0:8080).
EXPOSE 8080
# Healthy when the server this container runs (kuzot serve, kuzot control serve) answers
# /api/v1/health; always healthy for one-shot commands such as kuzot run.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-m", "probe.volunteer.container_health"]
ENTRYPOINT ["kuzot"]
CMD ["run"]
