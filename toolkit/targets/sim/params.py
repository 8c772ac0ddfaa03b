"""The simulated platform's parameters (an environment's `sim:` mapping: how long each thing takes) and the time
constants every part of the model shares."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

NEVER = math.inf
STEADY_SECONDS = 86_400.0


@dataclass
class SimParams:
    observe_interval: float = 5.0
    kafka_stop_seconds: float = 5.0
    kafka_restart_seconds: float = 60.0  # pod deleted -> broker running and Ready
    kafka_recovery_seconds: float = 0.0  # broker in log recovery after start
    kafka_catchup_seconds: float = 30.0  # broker running -> back in every ISR (per partition spread 0.5-1.0x)
    quorum_catchup_seconds: float = 2.0
    es_stop_seconds: float = 5.0
    es_restart_seconds: float = 45.0
    es_recovery_seconds: float = 20.0
    shutdown_complete_seconds: float = 5.0
    worker_start_seconds: float = 15.0
    worker_stop_seconds: float = 5.0
    events_per_second: float = 2000.0
    indexer_capacity: float = 1500.0  # events/s per ready indexer pod
    es_shutdown_api: bool = True  # False models a server without the node shutdown API (allocation method)
    node_ready_seconds: float = 90.0  # a surged node: instance launched -> kubelet registered and Ready
    node_terminate_seconds: float = 30.0  # a terminated node's Node object disappears after this
    volume_attach_seconds: float = 20.0  # a StatefulSet pod that starts on another node waits for its volume
    control_plane_upgrade_seconds: float = 480.0
    addon_update_seconds: float = 60.0
    seed: int = 7
    wall_pace: float = 0.0  # wall-clock seconds slept per simulated second (0: as fast as possible), so that a
    # person or a test can watch, signal or pause a run of the simulated platform as it goes


def params_from(values: dict[str, float]) -> SimParams:
    """SimParams from an environment's `sim:` mapping; unknown keys raise ValueError naming them."""
    known = {f.name for f in fields(SimParams)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"unknown sim parameters {unknown} (known: {', '.join(sorted(known))})")
    defaults = SimParams()
    return SimParams(**{k: type(getattr(defaults, k))(v) for k, v in values.items()})
