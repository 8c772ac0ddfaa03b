"""The simulated ingestion workers' data plane: events arrive at a steady rate (`events_per_second`); each ready
indexer consumes at a fixed capacity (`indexer_capacity`, halved while Elasticsearch is red); the consumer lag is the
backlog. A rehearsal's live load (`toolkit.rehearsal.traffic`) replaces this model while it runs and sets the lag
itself. The receivers and indexers are Deployments (`pods.py`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from toolkit.config.platform import WorkersSpec
from toolkit.model import Health, WorkersState

if TYPE_CHECKING:
    from toolkit.targets.sim.world import World


class WorkersModel:
    """The workers' own state: the consumer lag (events)."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.lag = 0.0

    def build(self, spec: WorkersSpec, zones: tuple[str, ...], version: str) -> None:
        """A Deployment of receivers and one of indexers."""
        for role, count in (("receiver", spec.receivers), ("indexer", spec.indexers)):
            self.world.controllers.add_workload(
                f"workers-{role}",
                "workers",
                "Deployment",
                role,
                count,
                version,
                max_surge=spec.max_surge,
                zones=zones,
            )

    def tick(self, dt: float) -> None:
        world = self.world
        indexers = [
            p
            for w in world.workloads.values()
            if w.component == "workers" and w.role == "indexer"
            for p in world.pods_of(w.name)
            if p.ready
        ]
        capacity = len(indexers) * world.params.indexer_capacity
        if world.elasticsearch.health() is Health.RED:
            capacity *= 0.5
        self.lag = max(0.0, self.lag + (world.params.events_per_second - capacity) * dt)

    def snapshot(self) -> WorkersState:
        return WorkersState(consumer_group="toolkit-indexer", lag=round(self.lag), lag_by_partition=())
