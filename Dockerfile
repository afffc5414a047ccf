# Kuzot probe in a container (an editable install keeps targets/ beside the code).
# The database lives in the /data volume:
#   docker build -t kuzot .
#   docker run --rm -v kuzot-data:/data -e KUZOT_ACCEPT_RISKS=1 kuzot run
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
RUN pip install -e . && useradd --create-home --uid 10001 kuzot && mkdir -p /data && chown kuzot /data

USER kuzot
VOLUME ["/data"]
ENTRYPOINT ["kuzot"]
CMD ["run"]
