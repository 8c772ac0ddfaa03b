# Two images from one file, each with only what it runs (pins: pyproject.toml, read by scripts/extra_requirements.py).
#
#   docker build -t toolkit-worker:0.1.0 .                              the worker image (default, last stage):
#       `toolkit-worker receiver|indexer`, plus the `toolkit es apply-templates` Job the Elasticsearch chart runs
#       from it; only the [worker] extra is installed (no Kubernetes client, Helm, Ansible, Pulumi, boto3, matplotlib)
#   docker build --target orchestrator -t toolkit:0.1.0 .               the orchestrator image: the `toolkit` CLI
#       with its adapters (base install), for the in-cluster upgrade Job (toolkit/targets/orchestrator-job.yaml)
#
# Both builds end by printing the size of what they installed.
FROM python:3.11-slim AS build-worker
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# confluent-kafka ships manylinux wheels with librdkafka inside: no compiler or apt package is needed
COPY pyproject.toml README.md ./
COPY scripts/extra_requirements.py ./scripts/
COPY toolkit ./toolkit
RUN python scripts/extra_requirements.py worker > /tmp/worker-requirements.txt \
 && python -m venv /opt/toolkit \
 && /opt/toolkit/bin/pip install -r /tmp/worker-requirements.txt \
 && /opt/toolkit/bin/pip install --no-deps . \
 && echo "worker image: $(du -sh /opt/toolkit | cut -f1) in /opt/toolkit, $(/opt/toolkit/bin/pip list --format=freeze | wc -l) packages"

FROM python:3.11-slim AS build-orchestrator
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY toolkit ./toolkit
RUN python -m venv /opt/toolkit \
 && /opt/toolkit/bin/pip install . \
 && echo "orchestrator image: $(du -sh /opt/toolkit | cut -f1) in /opt/toolkit, $(/opt/toolkit/bin/pip list --format=freeze | wc -l) packages"

FROM python:3.11-slim AS orchestrator
ENV PATH=/opt/toolkit/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN groupadd --system --gid 10001 toolkit \
 && useradd --system --uid 10001 --gid toolkit --no-create-home --shell /usr/sbin/nologin toolkit
COPY --from=build-orchestrator /opt/toolkit /opt/toolkit
USER 10001:10001
ENTRYPOINT ["toolkit"]
CMD ["--help"]

FROM python:3.11-slim AS worker
ENV PATH=/opt/toolkit/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN groupadd --system --gid 10001 toolkit \
 && useradd --system --uid 10001 --gid toolkit --no-create-home --shell /usr/sbin/nologin toolkit
COPY --from=build-worker /opt/toolkit /opt/toolkit
USER 10001:10001
# syslog: 5514 UDP/TCP, 6514 TLS (RFC 5425); probes and metrics: 8080
EXPOSE 5514/udp 5514/tcp 6514/tcp 8080/tcp
# exec form: the worker is PID 1 and receives SIGTERM itself (graceful drain)
ENTRYPOINT ["toolkit-worker"]
CMD ["receiver"]
