"""Engine benchmark: prints its figures side by side, measured in one run.

1. Plan time for 30 brokers x 3,000 partitions (target < 100 ms), serial and --parallel auto.
2. Per-broker roll time on the simulated platform (5 s observation interval, 60 s restart, 30 s catch-up):
   ours vs inherent time + confirmation window + one interval (target: within it), and vs a fixed
   "12 checks x 10 s" rule (Yelp kafka-utils) applied after the same restart.
3. Serial vs --parallel auto for 12 brokers, RF 3, rack-aware over 3 zones (target >= 2x faster).
4. `toolkit --help` wall time / `python -c "import typer"` (target <= 1.5).

Figures 2 and 3 are SIMULATED durations (virtual clock); 1 and 4 are wall-clock on this machine.
Run: .venv/bin/python benchmarks/engine_bench.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

from toolkit.catalog import load
from toolkit.config.platform import KafkaSpec, PlatformSpec
from toolkit.engine import planner
from toolkit.engine.executor import Executor
from toolkit.model import Component, UpgradeSettings
from toolkit.targets.sim import SimParams, SimTarget, build_world

CAT = load()
TO = {Component.KAFKA: "4.1.0"}


def plan_time() -> None:
    spec = PlatformSpec(
        kafka=KafkaSpec(version="4.0.1", controllers=3, brokers=30, topics=10, partitions_per_topic=300)
    )
    state = SimTarget(build_world("bench", spec)).observe()
    partitions = len(state.kafka.partitions)
    for parallel in ("none", "auto"):
        settings = UpgradeSettings(parallel=parallel)
        samples = []
        for _ in range(7):
            t0 = time.perf_counter()
            plan = planner.plan(state, TO, settings, CAT)
            samples.append((time.perf_counter() - t0) * 1000)
        print(
            f"plan 30 brokers x {partitions} partitions, --parallel {parallel:4}: "
            f"median {statistics.median(samples):6.1f} ms"
            f" (min {min(samples):.1f}, {len(plan.steps)} steps)   target < 100 ms"
        )


def per_broker() -> None:
    params = SimParams(observe_interval=5, kafka_restart_seconds=60, kafka_catchup_seconds=30, kafka_stop_seconds=5)
    spec = PlatformSpec(kafka=KafkaSpec(version="4.0.1", controllers=3, brokers=6))
    world = build_world("bench", spec, params)
    settings = UpgradeSettings(poll_interval=5, confirm_seconds=10)
    result = Executor(SimTarget(world), CAT, TO, settings, holder="bench@local/1").run()
    assert result.ok, result.reason
    print(
        f"\nper-broker roll time (SIMULATED: interval {params.observe_interval:.0f} s, restart "
        f"{params.kafka_restart_seconds:.0f} s, catch-up up to {params.kafka_catchup_seconds:.0f} s, "
        f"confirm {settings.confirm_seconds:.0f} s)"
    )
    print(f"{'broker':>8} {'inherent':>9} {'ours':>6} {'bound':>6} {'within':>7} {'12x10s rule':>12} {'ours/rule':>10}")
    ours_total = rule_total = 0.0
    for record in result.steps:
        if record.kind != "restart" or not record.members[0].startswith("kafka-broker"):
            continue
        pod = record.members[0]
        node = next(n for n in world.kafka_nodes if n.pod == pod)
        catchup = max(
            world._factor(p.topic, p.partition, node.id) * params.kafka_catchup_seconds
            for p in world.partitions
            if node.id in p.replicas
        )
        inherent = params.kafka_stop_seconds + params.kafka_restart_seconds + catchup
        bound = inherent + settings.confirm_seconds + params.observe_interval
        ours = record.ended_at - record.started_at
        rule = params.kafka_stop_seconds + params.kafka_restart_seconds + 12 * 10  # fixed checks after the restart
        ours_total += ours
        rule_total += rule
        print(
            f"{node.id:>8} {inherent:8.1f}s {ours:5.0f}s {bound:5.0f}s {ours <= bound!s:>7} {rule:11.0f}s "
            f"{ours / rule:9.2f}x"
        )
    print(f"{'total':>8} {'':9} {ours_total:5.0f}s {'':6} {'':7} {rule_total:11.0f}s {ours_total / rule_total:9.2f}x")


def parallel_speedup() -> None:
    spec = PlatformSpec(kafka=KafkaSpec(version="4.0.1", controllers=3, brokers=12))
    durations = {}
    for parallel in ("none", "auto"):
        world = build_world("bench", spec, SimParams())
        result = Executor(SimTarget(world), CAT, TO, UpgradeSettings(parallel=parallel), holder="b@l/1").run()
        assert result.ok, result.reason
        brokers = [r for r in result.steps if r.kind == "restart" and r.members[0].startswith("kafka-broker")]
        durations[parallel] = (sum(r.ended_at - r.started_at for r in brokers), len(brokers))
    serial, batches = durations["none"], durations["auto"]
    print(
        f"\n12 brokers, RF 3, 3 zones (SIMULATED): serial {serial[0]:.0f} s in {serial[1]} steps; "
        f"--parallel auto {batches[0]:.0f} s in {batches[1]} batches; speed-up {serial[0] / batches[0]:.2f}x "
        "(target >= 2x)"
    )


def startup() -> None:
    exe = Path(sys.executable).parent / "toolkit"

    def timed(cmd: list[str]) -> float:
        samples = []
        for _ in range(7):
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            samples.append(time.perf_counter() - t0)
        return statistics.median(samples)

    typer_time = timed([sys.executable, "-c", "import typer"])
    help_time = timed([str(exe), "--help"])
    print(
        f"\n`toolkit --help` {help_time * 1000:.0f} ms / `python -c 'import typer'` {typer_time * 1000:.0f} ms "
        f"= {help_time / typer_time:.2f} (target <= 1.5)"
    )


if __name__ == "__main__":
    plan_time()
    per_broker()
    parallel_speedup()
    startup()
