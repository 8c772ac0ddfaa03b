"""Elasticsearch snapshots: register the S3 snapshot repository of a region and take and report a snapshot.

`register_s3_repository(es, bucket, ...)` registers (idempotently) repository `s3-snapshots` of type `s3` over
the region's snapshot bucket (stack outputs `snapshotBucket`), under `base_path` (default `elasticsearch`).
Elasticsearch verifies a repository when it is registered: every master and data node writes and reads a test
blob. On EKS that works only when (1) the service account carries the writer role (chart value
`serviceAccount.annotations."eks.amazonaws.com/role-arn"` = output `snapshotWriterRoleArn`), (2) the web
identity token is linked into the config directory (the chart's prepare-config step does it), and (3) the S3
client reaches the region's endpoint (`config."s3.client.default.endpoint"` = `s3.<region>.amazonaws.com`, over
the VPC's S3 gateway endpoint). The bucket's default encryption (SSE-KMS with the snapshots key, bucket key on)
encrypts what Elasticsearch writes; the writer role may use that key and nothing else.
A verification failure raises `SnapshotError` naming those three causes; nothing is left registered.

`take_snapshot(es, repository, ...)` refuses when the repository is not registered, then takes a snapshot and
waits for it (`wait_for_completion`), and reports state, indices, shards and failures (`SnapshotReport`).
`snapshot_chart_values(role_arn, region)` is what a region's deploy merges into the Elasticsearch chart's values
for (1) and (3).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from elasticsearch import ApiError, Elasticsearch, TransportError

S3_REPOSITORY = "s3-snapshots"
DEFAULT_BASE_PATH = "elasticsearch"


class Unreachable(RuntimeError):
    """Elasticsearch did not answer (connection refused, TLS failure, timeout)."""


class SnapshotError(RuntimeError):
    """A repository or snapshot request Elasticsearch refused; the message names the object and the way out."""


@dataclass(frozen=True)
class RepositoryResult:
    name: str
    type: str
    settings: dict[str, Any]
    changed: bool


@dataclass(frozen=True)
class SnapshotReport:
    repository: str
    snapshot: str
    state: str  # SUCCESS | PARTIAL | FAILED | IN_PROGRESS
    indices: tuple[str, ...]
    shards_total: int
    shards_successful: int
    shards_failed: int
    seconds: float
    failures: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.state == "SUCCESS" and self.shards_failed == 0


def s3_repository_body(bucket: str, base_path: str = DEFAULT_BASE_PATH, client: str = "default") -> dict[str, Any]:
    """The `PUT _snapshot/<name>` body of the region's S3 repository."""
    if not bucket:
        raise SnapshotError("the snapshot bucket is empty: take it from the region stack's output `snapshotBucket`")
    return {"type": "s3", "settings": {"bucket": bucket, "base_path": base_path, "client": client}}


def _reason(error: ApiError) -> str:
    body = error.body if isinstance(error.body, dict) else {}
    cause = body.get("error", {}) if isinstance(body.get("error"), dict) else {}
    return str(cause.get("reason") or error.message)


def registered(es: Elasticsearch, name: str) -> dict[str, Any] | None:
    """The repository's definition, or None when it is not registered."""
    try:
        answer = es.snapshot.get_repository(name=name)
    except ApiError as error:
        if error.meta.status == 404:
            return None
        raise SnapshotError(f"GET _snapshot/{name} answered {error.meta.status}: {_reason(error)}") from None
    found = answer.body.get(name)
    return dict(found) if isinstance(found, dict) else None


def register_repository(es: Elasticsearch, name: str, body: dict[str, Any]) -> RepositoryResult:
    """Register repository `name` with `body` (verified by Elasticsearch); unchanged when already so."""
    current = registered(es, name)
    wanted_settings = {k: str(v) for k, v in body.get("settings", {}).items()}
    if current is not None and current.get("type") == body["type"]:
        current_settings = {k: str(v) for k, v in (current.get("settings") or {}).items()}
        if current_settings == wanted_settings:
            return RepositoryResult(name, body["type"], dict(body["settings"]), changed=False)
    try:
        es.snapshot.create_repository(name=name, repository=body)
    except ApiError as error:
        hint = ""
        if body["type"] == "s3":
            hint = (
                "; check that the Elasticsearch service account carries the snapshot writer role (chart value "
                "serviceAccount.annotations.eks.amazonaws.com/role-arn = the stack output snapshotWriterRoleArn), that "
                "the pods were restarted since (the token is linked at start), and that s3.client.default.endpoint "
                "points at the bucket's region"
            )
        raise SnapshotError(
            f"Elasticsearch refused repository {name} ({body['type']} {wanted_settings}): {error.meta.status} "
            f"{_reason(error)}{hint}"
        ) from None
    return RepositoryResult(name, body["type"], dict(body["settings"]), changed=True)


def register_s3_repository(
    es: Elasticsearch,
    bucket: str,
    *,
    name: str = S3_REPOSITORY,
    base_path: str = DEFAULT_BASE_PATH,
    client: str = "default",
) -> RepositoryResult:
    """Register the region's S3 snapshot repository (see the module docstring)."""
    return register_repository(es, name, s3_repository_body(bucket, base_path, client))


def snapshot_name(now: dt.datetime | None = None) -> str:
    return f"snapshot-{(now or dt.datetime.now(dt.UTC)).strftime('%Y.%m.%d-%H.%M.%S')}"


def take_snapshot(
    es: Elasticsearch,
    repository: str = S3_REPOSITORY,
    snapshot: str | None = None,
    indices: str | None = None,
    timeout: float = 3600.0,
) -> SnapshotReport:
    """Take a snapshot in `repository`, wait for it, and report it; SnapshotError when it cannot be taken,
    Unreachable when Elasticsearch does not answer."""
    try:
        return _take_snapshot(es, repository, snapshot, indices, timeout)
    except TransportError as error:
        raise Unreachable(str(error.message)) from None


def _take_snapshot(
    es: Elasticsearch, repository: str, snapshot: str | None, indices: str | None, timeout: float
) -> SnapshotReport:
    if registered(es, repository) is None:
        raise SnapshotError(
            f"snapshot repository {repository} is not registered on this cluster: `toolkit deploy` registers the "
            f"region's S3 repository ({S3_REPOSITORY}); on other clusters register one first, or pass --repository"
        )
    name = snapshot or snapshot_name()
    try:
        answer = es.options(request_timeout=timeout).snapshot.create(
            repository=repository,
            snapshot=name,
            indices=indices,
            include_global_state=True,
            wait_for_completion=True,
        )
    except ApiError as error:
        raise SnapshotError(f"snapshot {repository}/{name} was refused: {error.meta.status} {_reason(error)}") from None
    info = answer.body.get("snapshot") or {}
    shards = info.get("shards") or {}
    failures = tuple(f"{f.get('index')}[{f.get('shard_id')}]: {f.get('reason')}" for f in info.get("failures") or [])
    return SnapshotReport(
        repository=repository,
        snapshot=str(info.get("snapshot", name)),
        state=str(info.get("state", "UNKNOWN")),
        indices=tuple(sorted(info.get("indices") or [])),
        shards_total=int(shards.get("total", 0)),
        shards_successful=int(shards.get("successful", 0)),
        shards_failed=int(shards.get("failed", 0)),
        seconds=float(info.get("duration_in_millis", 0)) / 1000,
        failures=failures,
    )


def snapshot_chart_values(writer_role_arn: str, bucket_region: str) -> dict[str, Any]:
    """The Elasticsearch chart values a region's deploy merges in, from the stack outputs `snapshotWriterRoleArn`
    and `snapshotBucketRegion`: the IRSA annotation and the S3 client's regional endpoint."""
    from toolkit.config.residency import LocationError, load_catalog, parse_arn

    try:
        arn = parse_arn(writer_role_arn)
    except LocationError as error:
        raise SnapshotError(f"snapshotWriterRoleArn: {error}") from None
    if arn.service != "iam" or not arn.resource.startswith("role/"):
        raise SnapshotError(f"snapshotWriterRoleArn {writer_role_arn!r} is not an IAM role ARN")
    try:
        load_catalog().region(bucket_region)
    except LocationError as error:
        raise SnapshotError(f"snapshotBucketRegion: {error}") from None
    return {
        "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": writer_role_arn}},
        "config": {"s3.client.default.endpoint": f"s3.{bucket_region}.amazonaws.com"},
    }
