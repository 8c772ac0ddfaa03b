"""Small builders for observed-state fixtures: a test states only what its rule looks at."""

from __future__ import annotations

from toolkit.model import (
    BrokerState,
    Component,
    EsNode,
    EsState,
    Health,
    KafkaNode,
    KafkaRole,
    KafkaState,
    Partition,
    PlatformState,
    Pod,
    Shard,
    ShardState,
    Topic,
    Voter,
    Workload,
)


def kafka(
    partitions: list[tuple[str, int, list[int], list[int]]],
    brokers: list[int] = (1, 2, 3),  # type: ignore[assignment]
    controllers: list[int] = (),  # type: ignore[assignment]
    min_isr: int = 2,
    rf: int = 3,
    states: dict[int, BrokerState] | None = None,
    unreachable: tuple[int, ...] = (),
    voters_caught_up: dict[int, bool] | None = None,
    active: int | None = None,
    version: str = "4.0.1",
    unclean: bool = False,
) -> KafkaState:
    states = states or {}
    nodes = [
        KafkaNode(
            b,
            KafkaRole.BROKER,
            f"kafka-broker-{b}",
            f"zone-{b % 3}",
            version,
            states.get(b, BrokerState.RUNNING),
            b not in unreachable,
        )
        for b in brokers
    ] + [
        KafkaNode(
            c,
            KafkaRole.CONTROLLER,
            f"kafka-controller-{c}",
            f"zone-{c % 3}",
            version,
            states.get(c, BrokerState.RUNNING),
            c not in unreachable,
        )
        for c in controllers
    ]
    topics = sorted({t for t, *_ in partitions})
    caught = voters_caught_up or {c: True for c in controllers}
    return KafkaState(
        nodes=tuple(nodes),
        topics=tuple(Topic(t, rf, min_isr, unclean) for t in topics),
        partitions=tuple(
            Partition(t, p, tuple(replicas), tuple(isr), isr[0] if isr else None) for t, p, replicas, isr in partitions
        ),
        active_controller=active,
        voters=tuple(Voter(c, 0 if caught.get(c, True) else 5000, caught.get(c, True)) for c in controllers),
        metadata_version="4.0-IV3",
    )


def es(
    shards: list[tuple[str, int, bool, str, str | None]],
    nodes: list[tuple[str, str]] = (("hot-0", "hot"), ("hot-1", "hot"), ("hot-2", "hot")),  # type: ignore[assignment]
    masters: list[str] = (),  # type: ignore[assignment]
    health: Health | None = None,
    down: tuple[str, ...] = (),
    version: str = "8.18.3",
) -> EsState:
    built = tuple(
        Shard(index, number, primary, ShardState(state), node) for index, number, primary, state, node in shards
    )
    if health is None:
        if any(s.primary and s.state in (ShardState.UNASSIGNED, ShardState.INITIALIZING) for s in built):
            health = Health.RED
        elif any(s.state in (ShardState.UNASSIGNED, ShardState.INITIALIZING) for s in built):
            health = Health.YELLOW
        else:
            health = Health.GREEN
    es_nodes = [EsNode(n, (f"data_{t}",), version, t, n not in down) for n, t in nodes]
    es_nodes += [EsNode(m, ("master",), version, "", m not in down) for m in masters]
    return EsState(health=health, nodes=tuple(es_nodes), shards=built, elected_master=masters[0] if masters else None)


def platform(
    kafka_state: KafkaState | None = None, es_state: EsState | None = None, workloads: tuple[Workload, ...] = ()
) -> PlatformState:
    return PlatformState(
        environment="test",
        observed_at=0.0,
        simulated=True,
        workloads=workloads,
        kafka=kafka_state or KafkaState(),
        elasticsearch=es_state or EsState(),
    )


def deployment(
    name: str,
    replicas: int,
    ready: int,
    version: str = "0.1.0",
    max_unavailable: int = 0,
    revision: str = "r1",
    update_revision: str = "r1",
) -> Workload:
    pods = tuple(Pod(f"{name}-{i}", name, i < ready, revision, version) for i in range(replicas))
    return Workload(
        name,
        Component.WORKERS,
        "Deployment",
        "indexer",
        replicas,
        "RollingUpdate",
        update_revision,
        version,
        max_unavailable=max_unavailable,
        pods=pods,
    )
