"""The data plane as the engine observed it during a live rehearsal's change: every observation the engine made (its
target's `on_observe`), reduced to what a client of Kafka and Elasticsearch would have suffered.

On `local` the multi-node Kafka and Elasticsearch the engine gates on is the SIMULATED data plane that follows the
real pods (toolkit.targets.dataplane), while the live load runs against the single-node peer: a node drain that
takes a broker away before its partitions are back in their ISRs shows here, not in the load. These figures are
the engine's own observations, one per poll, and every output names them "simulated data plane".

Measured (`summarise`, a pure function of the samples):
- partitions under min.insync.replicas (acks=all producers are refused) and offline partitions (no leader): the
  largest number at once and the seconds during which there was at least one;
- Elasticsearch health: the seconds it was red (a primary without a started copy: searches and writes to it fail).
Seconds are integrated as a step function between consecutive observations (the state observed holds until the
next observation), so their resolution is the engine's poll interval, reported as `interval_seconds` (median).
"""

from __future__ import annotations

import itertools
import statistics
import threading
from dataclasses import dataclass
from typing import Any

from toolkit.engine.gates import kafka as kafka_gates
from toolkit.model import Health, PlatformState


@dataclass(frozen=True)
class Sample:
    at: float  # the observation's time on the target's clock
    under_min_isr: int
    offline: int
    es_health: str  # green | yellow | red | unknown ("" when the platform has no Elasticsearch)


def sample(state: PlatformState) -> Sample:
    """What one observation says a client would suffer now."""
    kafka = state.kafka
    index = kafka_gates.index(kafka) if kafka.partitions and not kafka.unobserved else None
    es = state.elasticsearch
    health = es.health.value if es.nodes or es.unobserved else ""
    return Sample(
        at=state.observed_at,
        under_min_isr=len(index.under_min) if index else 0,
        offline=len(index.offline) if index else 0,
        es_health=health,
    )


def summarise(samples: list[Sample]) -> dict[str, Any]:
    """The figures over a run's observations (see the module docstring); zeros for no observation."""
    ordered = sorted(samples, key=lambda s: s.at)
    spans = [(s, nxt.at - s.at) for s, nxt in itertools.pairwise(ordered)]
    intervals = [seconds for _, seconds in spans]
    return {
        "observations": len(ordered),
        "interval_seconds": round(statistics.median(intervals), 2) if intervals else 0.0,
        "max_under_min_isr": max((s.under_min_isr for s in ordered), default=0),
        "under_min_isr_seconds": round(sum(t for s, t in spans if s.under_min_isr), 1),
        "max_offline": max((s.offline for s in ordered), default=0),
        "offline_seconds": round(sum(t for s, t in spans if s.offline), 1),
        "ever_red": any(s.es_health == Health.RED.value for s in ordered),
        "red_seconds": round(sum(t for s, t in spans if s.es_health == Health.RED.value), 1),
    }


def reasons(figures: dict[str, Any], what: str) -> list[str]:
    """Why the data plane `what` (e.g. "the simulated data plane") fails the rehearsal; [] when it never did."""
    out = []
    if figures["max_under_min_isr"]:
        out.append(
            f"{what} had up to {figures['max_under_min_isr']} partition(s) under min.insync.replicas for "
            f"{figures['under_min_isr_seconds']:.0f} s (acks=all producers refused)"
        )
    if figures["max_offline"]:
        out.append(
            f"{what} had up to {figures['max_offline']} offline partition(s) for {figures['offline_seconds']:.0f} s"
        )
    if figures["ever_red"]:
        out.append(f"{what}: Elasticsearch was red for {figures['red_seconds']:.0f} s")
    return out


class Record:
    """The target's `on_observe`: keeps one `Sample` per observation (called from the engine's thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.samples: list[Sample] = []

    def __call__(self, state: PlatformState) -> None:
        taken = sample(state)
        with self._lock:
            self.samples.append(taken)

    def summary(self) -> dict[str, Any]:
        with self._lock:
            return summarise(list(self.samples))
