"""One driver per component (see `base.py` for what a driver is); `default_drivers()` is the built-in registry.

The planner and the executor take a registry (component name -> driver) and iterate it in the catalog's upgrade
order; a component the catalog names without a driver is refused with the reason, never planned as another one.
"""

from __future__ import annotations

from collections.abc import Mapping

from toolkit.engine.drivers.base import ComponentDriver, ComponentPlan, Halt, StepContext, Stop
from toolkit.engine.drivers.elasticsearch import ElasticsearchDriver
from toolkit.engine.drivers.kafka import KafkaDriver
from toolkit.engine.drivers.workers import WorkersDriver

Drivers = Mapping[str, ComponentDriver]

__all__ = ["ComponentDriver", "ComponentPlan", "Drivers", "Halt", "StepContext", "Stop", "default_drivers"]


def default_drivers() -> dict[str, ComponentDriver]:
    """The built-in components' drivers, keyed by catalog component name."""
    drivers: list[ComponentDriver] = [KafkaDriver(), ElasticsearchDriver(), WorkersDriver()]
    return {d.name: d for d in drivers}
