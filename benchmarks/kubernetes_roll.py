"""Kubernetes minor upgrade (1.33 -> 1.34) of the whole platform: the gated node roll vs a PDB-only drain.

SIMULATED (the simulated platform and its simulated live load, virtual clock): durations are simulated seconds, and
the platform is the built-in `sim` environment (3 controllers + 6 brokers, 3 masters + 6 data nodes, 6 workers; 12
nodes: 3 Kafka, 6 Elasticsearch, 3 worker nodes, one group per role and zone).

Paired runs: for each scenario (how long a restarted broker takes to catch up, 15 s to 120 s; the simulated
platform's default is 30 s) the SAME platform (same seed) is upgraded three ways, each under the same live load (500
probe messages/s through Kafka, 1,000 syslog events/s):
- gated (`toolkit upgrade run --to kubernetes=1.34`): nodes one at a time, each pod behind its own restart gates;
- gated, `--parallel auto`: batches of nodes whose brokers share no partition and data nodes no shard;
- PDB-only (`--unsafe-skip-gates`): every node group rolls at once, one node per group at a time, pods evicted as
  fast as their PodDisruptionBudgets allow: what EKS managed node groups do when their version changes.
Each run includes the control plane (480 s simulated) and the kube-proxy add-on (60 s); the node roll is also
reported alone (from the first surge to the end).

Figures printed, per scenario and mode: the durations; what broke (seconds with a partition under
min.insync.replicas, seconds of red Elasticsearch, failed searches, the longest produce outage, events lost); then
the ratio gated / PDB-only of the node roll per scenario, and the totals of what the PDB-only drain broke.

Never run by the test suite (no timed test there). Run: .venv/bin/python benchmarks/kubernetes_roll.py [CATCH-UP ...]
"""

from __future__ import annotations

import sys
from typing import Any

from toolkit.catalog import load
from toolkit.config.environments import resolve
from toolkit.engine.executor import Event, Executor
from toolkit.model import UpgradeSettings
from toolkit.rehearsal.traffic import Traffic
from toolkit.targets.sim import SimParams, SimTarget, build_world, params_for

TO = {"kubernetes": "1.34"}
CATCHUPS = [15.0, 30.0, 60.0, 120.0]  # seconds a restarted broker takes to rejoin every ISR (sim default 30)
MODES = {
    "gated": UpgradeSettings(),
    "gated --parallel auto": UpgradeSettings(parallel="auto"),
    "PDB-only drain": UpgradeSettings(skip_gates=True),
}


def one(catchup: float, settings: UpgradeSettings) -> dict[str, Any]:
    env = resolve("sim")
    params = SimParams(**{**params_for(env).__dict__, "kafka_catchup_seconds": catchup})
    world = build_world("bench", env.platform, params, versions={"kubernetes": "1.33"})
    traffic = Traffic(rate=500, syslog_rate=1000)
    world.traffic = traffic
    world.advance(60)
    first_surge: list[float] = []

    def on_event(e: Event) -> None:
        if e.kind == "act" and e.message.startswith("surge ") and not first_surge:
            first_surge.append(e.at)

    result = Executor(SimTarget(world), load(), TO, settings, holder="bench", on_event=on_event).run()
    assert result.outcome == "completed", result.reason
    traffic.stop()
    deadline = world.now + 900
    while not traffic.drained and world.now < deadline:
        world.advance(world.now + 5)
    summary = traffic.summary()
    history = [h for h in world.history if result.started_at <= h["t"] <= result.ended_at]
    return {
        "total": result.ended_at - result.started_at,
        "nodes": result.ended_at - first_surge[0],
        "below_min_isr_s": sum(1 for h in history if h["below_min_isr"]),
        "red_s": sum(1 for h in history if h["es_health"] == "red"),
        "search_errors": summary["search_errors"],
        "produce_outage_s": summary["max_unavailable_seconds"]["produce"],
        "lost": summary["lost_acknowledged"] + summary["lost_accepted"] + summary["syslog_udp_unreceived"],
        "evictions_refused": world.kubernetes.evictions_refused,
    }


def main() -> None:
    scenarios = [float(a) for a in sys.argv[1:]] or CATCHUPS
    print("Kubernetes 1.33 -> 1.34 on the sim platform under live load (SIMULATED seconds), paired per scenario")
    print(
        f"{'catch-up':>8}  {'mode':22} {'whole run':>9} {'node roll':>9} {'<minISR':>8} {'red':>5} "
        f"{'search err':>10} {'produce out':>11} {'lost':>4}"
    )
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    for catchup in scenarios:
        for mode, settings in MODES.items():  # paired: the same platform and load, each way
            r = one(catchup, settings)
            runs[mode].append(r)
            print(
                f"{catchup:7.0f}s  {mode:22} {r['total']:8.0f}s {r['nodes']:8.0f}s {r['below_min_isr_s']:7d}s "
                f"{r['red_s']:4d}s {r['search_errors']:10d} {r['produce_outage_s']:10.0f}s {r['lost']:4d}"
            )
    gated, auto, pdb = (runs[m] for m in MODES)
    for catchup, g, a, p in zip(scenarios, gated, auto, pdb, strict=True):
        print(
            f"catch-up {catchup:.0f} s: node roll gated / PDB-only {g['nodes'] / p['nodes']:.2f}x, "
            f"--parallel auto / PDB-only {a['nodes'] / p['nodes']:.2f}x; whole run {g['total'] / p['total']:.2f}x"
        )
    gated_all = gated + auto
    print(
        "the PDB-only drain, over all scenarios: "
        f"{sum(r['below_min_isr_s'] for r in pdb)} s with a partition under min.insync.replicas "
        f"(the gated rolls: {sum(r['below_min_isr_s'] for r in gated_all)}), "
        f"{sum(r['red_s'] for r in pdb)} s of red Elasticsearch ({sum(r['red_s'] for r in gated_all)}), "
        f"{sum(r['search_errors'] for r in pdb)} failed searches ({sum(r['search_errors'] for r in gated_all)}), "
        f"longest produce outage {max(r['produce_outage_s'] for r in pdb):.0f} s "
        f"({max(r['produce_outage_s'] for r in gated_all):.0f} s), "
        f"{sum(r['lost'] for r in pdb)} events lost ({sum(r['lost'] for r in gated_all)}), "
        f"{sum(r['evictions_refused'] for r in pdb)} evictions refused by PDBs"
    )


if __name__ == "__main__":
    main()
