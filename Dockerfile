# The walkthroughs dataflow: `python -m bytewax.run dataflow`, as a non-root user.
# Build: docker build -t walkthroughs:0.1.0 .
FROM python:3.11.14-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY walkthroughs ./walkthroughs
# Exact versions from constraints.txt; wheels only (confluent-kafka ships librdkafka inside).
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --only-binary=:all: -c constraints.txt .

FROM python:3.11.14-slim-bookworm
RUN useradd --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin walkthroughs
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY dataflow.py ./
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    BYTEWAX_DATAFLOW_API_ENABLED=1 \
    BYTEWAX_DATAFLOW_API_PORT=3030 \
    BYTEWAX_DATAFLOW_API_CACHE_PATH=/tmp
USER 10001:10001
# 3030: /metrics and /dataflow; 2101: worker-to-worker traffic of a multi-process cluster.
EXPOSE 3030 2101
ENTRYPOINT ["python", "-m", "bytewax.run", "dataflow"]
