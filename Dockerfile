# The ingestion worker image: `toolkit-worker receiver` or `toolkit-worker indexer`.
# Build from the repository root: docker build -t toolkit-worker:0.1.0 .
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# confluent-kafka ships manylinux wheels with librdkafka inside: no compiler or apt package is needed
COPY pyproject.toml README.md ./
COPY toolkit ./toolkit
RUN python -m venv /opt/toolkit \
 && /opt/toolkit/bin/pip install .

FROM python:3.11-slim
ENV PATH=/opt/toolkit/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN groupadd --system --gid 10001 toolkit \
 && useradd --system --uid 10001 --gid toolkit --no-create-home --shell /usr/sbin/nologin toolkit
COPY --from=build /opt/toolkit /opt/toolkit
USER 10001:10001
# syslog: 5514 UDP/TCP, 6514 TLS (RFC 5425); probes and metrics: 8080
EXPOSE 5514/udp 5514/tcp 6514/tcp 8080/tcp
# exec form: the worker is PID 1 and receives SIGTERM itself (graceful drain)
ENTRYPOINT ["toolkit-worker"]
CMD ["receiver"]
