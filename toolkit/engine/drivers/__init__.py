"""One driver per component (see `base.py` for what a driver is); `default_drivers()` is the built-in registry.

The planner and the executor take a registry (component name -> driver) and iterate it in the catalog's upgrade
order; a component the catalog names without a driver is refused with the reason, never planned as another one.
"""

from __future__ import annotations

from collections.abc import Mapping

from toolkit.engine.drivers.base import ComponentDriver, ComponentPlan, Halt, StepContext, Stop
from toolkit.engine.drivers.elasticsearch import ElasticsearchDriver
from toolkit.engine.drivers.kafka import KafkaDriver
from toolkit.engine.drivers.kubernetes import KubernetesDriver
from toolkit.engine.drivers.workers import WorkersDriver

Drivers = Mapping[str, ComponentDriver]

__all__ = [
    "ComponentDriver",
    "ComponentPlan",
    "Drivers",
    "Halt",
    "StepContext",
    "Stop",
    "default_drivers",
    "with_component",
]


def default_drivers() -> dict[str, ComponentDriver]:
    """The built-in components' drivers, keyed by catalog component name. Kubernetes' driver is given the others:
    a pod leaves a node the way a restart of it by its own driver would go."""
    drivers: list[ComponentDriver] = [KafkaDriver(), ElasticsearchDriver(), WorkersDriver()]
    peers = {d.name: d for d in drivers}
    return {KubernetesDriver.name: KubernetesDriver(peers), **peers}


def with_component(drivers: Mapping[str, ComponentDriver], driver: ComponentDriver) -> dict[str, ComponentDriver]:
    """`drivers` plus a plug-in component's driver, Kubernetes' driver re-made to know it too (so its pods leave a
    node behind its own gates)."""
    out = {name: d for name, d in drivers.items() if name != KubernetesDriver.name}
    out[driver.name] = driver
    return {KubernetesDriver.name: KubernetesDriver(out), **out}
