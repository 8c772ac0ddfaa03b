"""`plan_indices`: how many shards, what rollover size and how much disk an ingest rate needs.

Rules applied (Elastic's published sizing guidance):
- a shard holds 10-50 GB and fewer than 200 million documents;
- a node holds at most 1,000 non-frozen shards;
- a replica never shares a node with its primary, so replicas < nodes;
- a node's disk stays under the low watermark (85 %), so data per node <= 0.85 x disk.

Algorithm, from the inputs (events/s E, bytes per event B, retention D days, replicas R, nodes N, disk G GB):
1. on-disk primary bytes per event = B x `storage_ratio` (1.0 by default: with best_compression, lean
   mappings and `event.original` stored once, the on-disk size is close to the raw size; measure yours);
   daily primary bytes P = E x 86,400 x that; retained primary bytes T = P x D.
2. rollover shard size S: the target (40 GB, headroom under 50 GB because rollover is checked periodically),
   lowered to what the document bound allows (180 M docs x bytes per doc); when that lower bound falls under
   10 GB the events are too small for the size rule and the plan says so (a warning: the document bound wins).
3. primary shards per index p = ceil(P / S) capped at N, at least 1: one day of ingest fills at most one
   generation per node, and the write load of one index spreads over up to N nodes.
4. indices kept = ceil(T / (p x S)) + 1 (the write index is still filling); shards = indices x p x (1 + R).
5. refusals, each naming the rule and the way out: R >= N; shards per node > 1,000; disk per node =
   T x (1 + R) / N + one write generation's share, divided by 0.85, above G.
When all retained data is smaller than one shard target, a single index of p = 1 holds it all and the plan
notes that shards stay under 10 GB (small, but fewer shards is the better side to err on).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

GB = 1_000_000_000  # sizes in decimal GB, as disks are sold and as Elasticsearch's "gb" reads loosely
SECONDS_PER_DAY = 86_400
SHARD_MIN_GB = 10
SHARD_MAX_GB = 50
SHARD_TARGET_GB = 40
SHARD_MAX_DOCS = 200_000_000
SHARD_DOCS_TARGET = 180_000_000
MAX_SHARDS_PER_NODE = 1_000
DISK_LOW_WATERMARK = 0.85


class PlanRefused(ValueError):
    """The inputs cannot fit the sizing rules; `reasons` says which rule and the way out."""

    def __init__(self, reasons: list[str]) -> None:
        self.reasons = reasons
        super().__init__("; ".join(reasons))


@dataclass(frozen=True)
class IndexPlanInputs:
    events_per_second: float
    event_bytes: int
    retention_days: int
    replicas: int
    nodes: int
    disk_per_node_gb: float
    storage_ratio: float = 1.0
    shard_target_gb: float = SHARD_TARGET_GB


@dataclass(frozen=True)
class IndexPlan:
    inputs: IndexPlanInputs
    daily_primary_gb: float
    retained_primary_gb: float
    retained_total_gb: float
    docs_per_day: int
    primary_shards_per_index: int
    replicas: int
    rollover_max_primary_shard_size_gb: int
    rollover_max_primary_shard_docs: int
    expected_shard_gb: float
    indices_kept: int
    total_shards: int
    shards_per_node: int
    disk_needed_per_node_gb: float
    disk_used_fraction: float
    rollovers_per_day: float
    warnings: list[str] = field(default_factory=list)


def _validate(inputs: IndexPlanInputs) -> list[str]:
    problems = []
    for name in (
        "events_per_second",
        "event_bytes",
        "retention_days",
        "nodes",
        "disk_per_node_gb",
        "storage_ratio",
    ):
        if getattr(inputs, name) <= 0:
            problems.append(f"--{name.replace('_', '-')} must be greater than 0 (got {getattr(inputs, name)})")
    if inputs.replicas < 0:
        problems.append(f"--replicas must be 0 or more (got {inputs.replicas})")
    if not SHARD_MIN_GB <= inputs.shard_target_gb <= SHARD_MAX_GB:
        problems.append(f"shard target {inputs.shard_target_gb} GB is outside {SHARD_MIN_GB}-{SHARD_MAX_GB} GB")
    return problems


def plan_indices(inputs: IndexPlanInputs) -> IndexPlan:
    """Apply the module's algorithm; raise PlanRefused listing every rule the inputs break."""
    problems = _validate(inputs)
    if problems:
        raise PlanRefused(problems)
    warnings: list[str] = []
    doc_bytes = inputs.event_bytes * inputs.storage_ratio
    docs_per_day = inputs.events_per_second * SECONDS_PER_DAY
    daily_primary = docs_per_day * doc_bytes
    retained_primary = daily_primary * inputs.retention_days

    shard_size = inputs.shard_target_gb * GB
    docs_bound_size = SHARD_DOCS_TARGET * doc_bytes
    if docs_bound_size < shard_size:
        shard_size = docs_bound_size
        if shard_size < SHARD_MIN_GB * GB:
            warnings.append(
                f"events of {inputs.event_bytes} bytes reach the {SHARD_DOCS_TARGET:,}-document rollover "
                "bound at "
                f"{shard_size / GB:.1f} GB per shard, under the 10 GB minimum: the document bound wins "
                "(it protects search and merge cost); bigger events or fewer fields would raise it"
            )
    primaries = max(1, min(inputs.nodes, math.ceil(daily_primary / shard_size)))
    if retained_primary < shard_size:
        primaries = 1
        warnings.append(
            f"all retained data ({retained_primary / GB:.1f} GB) fits under one shard target: "
            "one index of one "
            "primary holds it, so shards stay under 10 GB (the better side to err on)"
        )
    generation_bytes = primaries * shard_size
    indices_kept = math.ceil(retained_primary / generation_bytes) + 1
    total_shards = indices_kept * primaries * (1 + inputs.replicas)
    shards_per_node = math.ceil(total_shards / inputs.nodes)
    expected_shard = min(shard_size, retained_primary / primaries) if retained_primary < shard_size else shard_size
    data_per_node = (retained_primary + generation_bytes) * (1 + inputs.replicas) / inputs.nodes
    disk_needed = data_per_node / DISK_LOW_WATERMARK

    refusals: list[str] = []
    if inputs.replicas >= inputs.nodes:
        refusals.append(
            f"{inputs.replicas} replica(s) need at least {inputs.replicas + 1} nodes "
            "(a copy never shares a node "
            f"with its primary); have {inputs.nodes}: add nodes or lower --replicas"
        )
    if shards_per_node > MAX_SHARDS_PER_NODE:
        needed_nodes = math.ceil(total_shards / MAX_SHARDS_PER_NODE)
        refusals.append(
            f"{total_shards:,} shards over {inputs.nodes} nodes is {shards_per_node:,} per node, above "
            f"{MAX_SHARDS_PER_NODE:,}: use at least {needed_nodes} nodes or shorten --retention-days"
        )
    if disk_needed > inputs.disk_per_node_gb * GB:
        needed_nodes = math.ceil(
            (retained_primary + generation_bytes)
            * (1 + inputs.replicas)
            / (inputs.disk_per_node_gb * GB * DISK_LOW_WATERMARK)
        )
        refusals.append(
            f"each node needs {math.ceil(disk_needed / GB):,} GB of disk "
            f"({data_per_node / GB:,.0f} GB of data kept under the 85 % watermark) "
            f"but has {inputs.disk_per_node_gb:,.0f} GB: use at least {needed_nodes} nodes, "
            f"{math.ceil(disk_needed / GB):,} GB per node, fewer replicas or a shorter retention"
        )
    if refusals:
        raise PlanRefused(refusals)
    return IndexPlan(
        inputs=inputs,
        daily_primary_gb=daily_primary / GB,
        retained_primary_gb=retained_primary / GB,
        retained_total_gb=retained_primary * (1 + inputs.replicas) / GB,
        docs_per_day=int(docs_per_day),
        primary_shards_per_index=primaries,
        replicas=inputs.replicas,
        rollover_max_primary_shard_size_gb=max(1, math.floor(shard_size / GB)),
        rollover_max_primary_shard_docs=SHARD_DOCS_TARGET,
        expected_shard_gb=expected_shard / GB,
        indices_kept=indices_kept,
        total_shards=total_shards,
        shards_per_node=shards_per_node,
        disk_needed_per_node_gb=disk_needed / GB,
        disk_used_fraction=data_per_node / (inputs.disk_per_node_gb * GB),
        rollovers_per_day=daily_primary / generation_bytes,
        warnings=warnings,
    )
