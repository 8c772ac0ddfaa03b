"""Worker gates: stateless Deployments roll through their own strategy, never below the desired ready count, and
each batch must bring the consumer lag back under a bound before the next one goes.
"""

from __future__ import annotations

from toolkit.model import Verdict, WorkersState, Workload


def strategy_safe(workload: Workload) -> Verdict:
    rule = "workers.max-unavailable-zero"
    if workload.kind == "Deployment" and workload.max_unavailable != 0:
        return Verdict.refuse(
            rule,
            f"deployment {workload.name} has maxUnavailable {workload.max_unavailable}: a roll could drop below the "
            "desired ready count; set strategy.rollingUpdate.maxUnavailable to 0 (the ingest-workers chart does)",
        )
    if workload.kind == "Deployment" and workload.max_surge < 1:
        return Verdict.refuse(
            "workers.max-surge",
            f"deployment {workload.name} has maxSurge 0 with maxUnavailable 0: it cannot roll",
        )
    return Verdict.passed(rule, f"deployment {workload.name} rolls with maxUnavailable 0")


def ready_at_desired(workload: Workload) -> Verdict:
    ready = workload.ready_replicas
    if ready < workload.replicas:
        return Verdict.wait(
            "workers.ready-at-desired",
            f"deployment {workload.name} has {ready} of {workload.replicas} pods ready",
        )
    return Verdict.passed("workers.ready-at-desired", f"deployment {workload.name}: {ready}/{workload.replicas} ready")


def lag_under_bound(workers: WorkersState, bound: int) -> Verdict:
    rule = "workers.lag-bound"
    if workers.lag > bound:
        worst = max(workers.lag_by_partition, key=lambda kv: kv[1], default=None)
        worst_text = f"; worst partition {worst[0]} at {worst[1]}" if worst else ""
        return Verdict.wait(
            rule,
            f"consumer group {workers.consumer_group or '?'} lag {workers.lag} > bound {bound}{worst_text}",
        )
    return Verdict.passed(rule, f"consumer lag {workers.lag} <= bound {bound}")


def rolled(workload: Workload, version: str) -> Verdict:
    """All pods of the Deployment run the update revision and the wanted version, and are ready."""
    stale = [p.name for p in workload.pods if p.revision != workload.update_revision or p.version != version]
    if stale:
        return Verdict.wait("workers.rolled", f"deployment {workload.name}: {len(stale)} pods not yet on {version}")
    extra = len(workload.pods) - workload.replicas
    if extra > 0:
        return Verdict.wait("workers.rolled", f"deployment {workload.name}: {extra} surplus pods still terminating")
    ready = ready_at_desired(workload)
    if not ready.ok:
        return ready
    return Verdict.passed("workers.rolled", f"deployment {workload.name}: every pod on {version} and ready")
