# Kuzot probe in a container (an editable install keeps targets/ beside the code).
# The database lives in the /data volume:
#   docker build -t kuzot .
#   docker run --rm -v kuzot-data:/data -e KUZOT_ACCEPT_RISKS=1 kuzot run
# The same image runs the collector (docs/collector.md), hence the PostgreSQL driver:
#   docker run --rm -p 127.0.0.1:8080:8080 kuzot serve --db postgresql+psycopg://... --listen 0.0.0.0:8080
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    KUZOT_DATA_DIR=/data \
    KUZOT_CONFIG_DIR=/data/config \
    KUZOT_TARGETS=/opt/kuzot/targets/kg.csv

WORKDIR /opt/kuzot
COPY pyproject.toml README.md ./
COPY probe ./probe
COPY analysis ./analysis
COPY targets ./targets
RUN pip install -e '.[postgres]' && useradd --create-home --uid 10001 kuzot && mkdir -p /data && chown kuzot /data

USER kuzot
VOLUME ["/data"]
ENTRYPOINT ["kuzot"]
CMD ["run"]
