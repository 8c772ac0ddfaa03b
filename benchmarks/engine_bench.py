"""Engine benchmark: prints its figures side by side, measured in one run.

1. Planner cost (wall clock, this machine) at 3 sizes, serial and `--parallel auto`: every sample plans a fresh copy
   of the observed state (so the per-state index is built each time, as on every observation of a run); warm-up
   rounds first, then the two modes interleaved in ABBA order so that drift in machine load hits both alike; medians
   and the exponent fitted on log(time) = a + k log(partitions). Target: < 100 ms at 100 brokers x 20,000 partitions.
2. `--parallel auto` batches on Kafka's own rack-aware placement (3 racks): batches vs racks.
3. Serial vs `--parallel auto` (SIMULATED durations, virtual clock), paired by seed (the same platform for both):
   the speed-up on the whole run (apply-spec, controllers and brokers) and on the broker steps alone.
4. Per-broker roll time (SIMULATED) vs the time the broker inherently needs, and vs a fixed "12 checks x 10 s" rule.
5. `toolkit --help` vs `python -c "import typer"` (wall clock), interleaved after a warm-up.

Never run by the test suite (no timed test there). Run: make bench (.venv/bin/python benchmarks/engine_bench.py).
The last line is `plan 100x20000: N ms` (the slower of the two modes).
"""

from __future__ import annotations

import math
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from toolkit.catalog import load
from toolkit.config.platform import KafkaSpec, PlatformSpec
from toolkit.engine import planner
from toolkit.engine.executor import Executor, RunResult
from toolkit.model import Component, PlatformState, UpgradeSettings
from toolkit.targets.sim import SimParams, SimTarget, build_world

CAT = load()
TO = {Component.KAFKA: "4.1.0"}
SIZES = ((25, 5, 1000), (50, 10, 1000), (100, 20, 1000))  # brokers, topics, partitions per topic
WARMUP, ROUNDS = 2, 6


def kafka_state(brokers: int, topics: int, per_topic: int, seed: int = 7) -> PlatformState:
    spec = PlatformSpec(
        kafka=KafkaSpec(version="4.0.1", controllers=3, brokers=brokers, topics=topics, partitions_per_topic=per_topic)
    )
    return SimTarget(build_world("bench", spec, SimParams(seed=seed))).observe()


def plan_ms(state: PlatformState, parallel: str) -> float:
    fresh = replace(state, kafka=replace(state.kafka))  # a new state object: its index is built again
    started = time.perf_counter()
    planner.plan(fresh, TO, UpgradeSettings(parallel=parallel), CAT)
    return (time.perf_counter() - started) * 1000


def interleaved(a: Callable[[], float], b: Callable[[], float]) -> tuple[list[float], list[float]]:
    """Warm-up, then ABBA rounds: each sample of A has a neighbour of B taken under the same machine load."""
    for _ in range(WARMUP):
        a(), b()
    xs: list[float] = []
    ys: list[float] = []
    for i in range(ROUNDS):
        if i % 2 == 0:
            xs.append(a())
            ys.append(b())
        else:
            ys.append(b())
            xs.append(a())
    return xs, ys


def exponent(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of log(y) over log(x)."""
    lx = [math.log(x) for x, _ in points]
    ly = [math.log(y) for _, y in points]
    mx, my = statistics.fmean(lx), statistics.fmean(ly)
    return sum((x - mx) * (y - my) for x, y in zip(lx, ly, strict=True)) / sum((x - mx) ** 2 for x in lx)


def planner_cost() -> float:
    print("planner cost (wall clock; fresh state per sample; ABBA-interleaved medians after warm-up)")
    print(f"{'brokers':>8} {'partitions':>11} {'--parallel none':>16} {'--parallel auto':>16} {'steps none/auto':>16}")
    serial_points: list[tuple[float, float]] = []
    auto_points: list[tuple[float, float]] = []
    last = 0.0
    for brokers, topics, per_topic in SIZES:
        state = kafka_state(brokers, topics, per_topic)
        partitions = len(state.kafka.partitions)
        none, auto = interleaved(lambda s=state: plan_ms(s, "none"), lambda s=state: plan_ms(s, "auto"))
        steps_none = len(planner.plan(state, TO, UpgradeSettings(), CAT).steps)
        steps_auto = len(planner.plan(state, TO, UpgradeSettings(parallel="auto"), CAT).steps)
        serial_points.append((partitions, statistics.median(none)))
        auto_points.append((partitions, statistics.median(auto)))
        print(
            f"{brokers:>8} {partitions:>11} {statistics.median(none):13.1f} ms {statistics.median(auto):13.1f} ms "
            f"{steps_none:>9}/{steps_auto}"
        )
        last = max(statistics.median(none), statistics.median(auto))
    print(
        f"fitted exponent (time ~ partitions^k): --parallel none k={exponent(serial_points):.2f}, "
        f"--parallel auto k={exponent(auto_points):.2f}   target: linear (k ~ 1), < 100 ms at 100 x 20000"
    )
    return last


def batches() -> None:
    print("\n--parallel auto on Kafka's rack-aware placement (3 racks; default topics: 4 x 12 partitions)")
    print(f"{'brokers':>8} {'racks':>6} {'batches':>8}")
    for brokers in (12, 30, 99, 100):
        state = kafka_state(brokers, 4, 12)
        plan = planner.plan(state, TO, UpgradeSettings(parallel="auto"), CAT)
        broker_steps = [s for s in plan.steps if s.kind == "restart" and s.members[0].startswith("kafka-broker")]
        racks = len({n.rack for n in state.kafka.nodes if n.is_broker})
        print(f"{brokers:>8} {racks:>6} {len(broker_steps):>8}")


def run(brokers: int, parallel: str, seed: int, params: SimParams | None = None) -> RunResult:
    spec = PlatformSpec(kafka=KafkaSpec(version="4.0.1", controllers=3, brokers=brokers))
    world = build_world("bench", spec, params or SimParams(seed=seed))
    result = Executor(SimTarget(world), CAT, TO, UpgradeSettings(parallel=parallel), holder="bench@local/1").run()
    assert result.ok, result.reason
    return result


def speedup() -> None:
    print("\nserial vs --parallel auto (SIMULATED durations), paired by seed: the same platform for both modes")
    print(
        f"{'brokers':>8} {'whole run serial/auto':>24} {'speed-up':>9} {'broker steps serial/auto':>26} {'speed-up':>9}"
    )
    for brokers in (12, 30):
        whole: list[float] = []
        only: list[float] = []
        figures: list[tuple[float, float, float, float]] = []
        for seed in range(1, 6):
            results = {mode: run(brokers, mode, seed) for mode in ("none", "auto")}
            total = {m: r.ended_at - r.started_at for m, r in results.items()}
            broker = {
                m: sum(s.ended_at - s.started_at for s in r.steps if s.members[0].startswith("kafka-broker"))
                for m, r in results.items()
            }
            whole.append(total["none"] / total["auto"])
            only.append(broker["none"] / broker["auto"])
            figures.append((total["none"], total["auto"], broker["none"], broker["auto"]))
        t_none, t_auto, b_none, b_auto = (statistics.median(f[i] for f in figures) for i in range(4))
        print(
            f"{brokers:>8} {t_none:>11.0f} s / {t_auto:>5.0f} s {statistics.median(whole):>8.2f}x "
            f"{b_none:>13.0f} s / {b_auto:>5.0f} s {statistics.median(only):>8.2f}x"
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
        node = next(n for n in world.kafka.nodes if n.pod == record.members[0])
        catchup = max(
            world.factor(p.topic, p.partition, node.id) * params.kafka_catchup_seconds
            for p in world.kafka.partitions
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


def startup() -> None:
    exe = str(Path(sys.executable).parent / "toolkit")

    def timed(cmd: list[str]) -> Callable[[], float]:
        def once() -> float:
            started = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            return time.perf_counter() - started

        return once

    help_times, typer_times = interleaved(timed([exe, "--help"]), timed([sys.executable, "-c", "import typer"]))
    h, t = statistics.median(help_times), statistics.median(typer_times)
    print(
        f"\n`toolkit --help` {h * 1000:.0f} ms / `python -c 'import typer'` {t * 1000:.0f} ms = {h / t:.2f} "
        "(target <= 1.5)"
    )


if __name__ == "__main__":
    slowest = planner_cost()
    batches()
    speedup()
    per_broker()
    startup()
    print(
        f"\nplan 100x20000, the slower of --parallel none and auto (target < 100 ms):\nplan 100x20000: {slowest:.0f} ms"
    )
