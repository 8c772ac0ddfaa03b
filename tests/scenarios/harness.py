"""Scenario helpers: a simulated platform, the engine, a virtual clock. Each scenario runs in well under a second."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from toolkit.catalog import load
from toolkit.config.platform import ElasticsearchSpec, KafkaSpec, PlatformSpec, WorkersSpec
from toolkit.engine.executor import Event, Executor, RunResult
from toolkit.model import Component, UpgradeSettings
from toolkit.targets.sim import Faults, SimParams, SimTarget, World, build_world


@dataclass
class Scenario:
    world: World
    target: SimTarget
    events: list[Event]

    def run(
        self,
        targets: dict[Component, str],
        settings: UpgradeSettings | None = None,
        holder: str = "sre@host-a/1",
        stop_after_steps: int = 0,
        hook: Callable[[Event], None] | None = None,
        stop_requested: Callable[[], bool] | None = None,
        stop_now: Callable[[], bool] = lambda: False,
    ) -> RunResult:
        """Run the engine; `hook` sees every event as it happens (to change the platform mid-run, or to ask the
        run to stop through `stop_requested` / `stop_now`, as the CLI's signal handler does)."""
        done = [0]

        def on_event(e: Event) -> None:
            self.events.append(e)
            if e.kind == "recovered":
                done[0] += 1
            if hook is not None:
                hook(e)

        executor = Executor(
            self.target,
            load(),
            targets,
            settings or UpgradeSettings(),
            holder=holder,
            on_event=on_event,
            stop_requested=stop_requested or (lambda: bool(stop_after_steps) and done[0] >= stop_after_steps),
            stop_now=stop_now,
        )
        return executor.run()

    def acts(self, prefix: str = "") -> list[tuple[float, str]]:
        """(virtual time, action) of every action taken, optionally only those starting with `prefix`."""
        return [(e.at, e.message) for e in self.events if e.kind == "act" and e.message.startswith(prefix)]

    def restart_order(self) -> list[str]:
        return [
            e.message.removeprefix("restart ")
            for e in self.events
            if e.kind == "act" and e.message.startswith("restart ")
        ]

    def resume(self) -> Scenario:
        """A new orchestrator process on the same platform (the old one died)."""
        return Scenario(self.world, SimTarget(self.world), self.events)


def make(
    kafka: KafkaSpec | None = None,
    es: ElasticsearchSpec | None = None,
    workers: WorkersSpec | None = None,
    versions: dict[str, str] | None = None,
    faults: Faults | None = None,
    params: SimParams | None = None,
) -> Scenario:
    spec = PlatformSpec(
        kafka=kafka or KafkaSpec(version="4.0.1"),
        elasticsearch=es or ElasticsearchSpec(version="8.18.3"),
        workers=workers or WorkersSpec(version="0.1.0"),
    )
    world = build_world("scenario", spec, params or SimParams(), faults or Faults(), versions=versions)
    return Scenario(world, SimTarget(world), [])
