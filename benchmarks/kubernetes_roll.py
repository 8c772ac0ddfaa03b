"""Kubernetes minor upgrade (1.33 -> 1.34) of the whole platform: the gated node roll vs a PDB-only drain.

SIMULATED (the simulated platform and its simulated live load, virtual clock): durations are simulated seconds, and
the platform is the built-in `sim` environment (3 controllers + 6 brokers, 3 masters + 6 data nodes, 6 workers; 12
nodes: 3 Kafka, 6 Elasticsearch, 3 worker nodes, one group per role and zone).

Paired runs: for each seed (the simulated platform's catch-up and placement spread) the SAME platform is upgraded
three ways, each under the same live load (500 probe messages/s through Kafka, 1,000 syslog events/s):
- gated (`toolkit upgrade run --to kubernetes=1.34`): nodes one at a time, each pod behind its own restart gates;
- gated, `--parallel auto`: batches of nodes whose brokers share no partition and data nodes no shard;
- PDB-only (`--unsafe-skip-gates`): every node group rolls at once, one node per group at a time, pods evicted as
  fast as their PodDisruptionBudgets allow: what EKS managed node groups do when their version changes.
Each run includes the control plane (480 s simulated) and the kube-proxy add-on (60 s); the node roll is also
reported alone (from the first surge to the end).

Figures printed: median durations and the ratio gated / PDB-only; and what the PDB-only drain broke that the gated
roll did not (seconds with a partition under min.insync.replicas, seconds of red Elasticsearch, failed searches,
the longest produce outage, acknowledged messages lost), summed or worst over the seeds.

Never run by the test suite (no timed test there). Run: .venv/bin/python benchmarks/kubernetes_roll.py [SEEDS]
"""

from __future__ import annotations

import statistics
import sys
from typing import Any

from toolkit.catalog import load
from toolkit.config.environments import resolve
from toolkit.engine.executor import Event, Executor
from toolkit.model import UpgradeSettings
from toolkit.rehearsal.traffic import Traffic
from toolkit.targets.sim import SimParams, SimTarget, build_world, params_for

TO = {"kubernetes": "1.34"}
MODES = {
    "gated": UpgradeSettings(),
    "gated --parallel auto": UpgradeSettings(parallel="auto"),
    "PDB-only drain": UpgradeSettings(skip_gates=True),
}


def one(seed: int, settings: UpgradeSettings) -> dict[str, Any]:
    env = resolve("sim")
    params = params_for(env)
    world = build_world(
        "bench", env.platform, SimParams(**{**params.__dict__, "seed": seed}), versions={"kubernetes": "1.33"}
    )
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
        "offline_s": sum(1 for h in history if h["offline"]),
        "red_s": sum(1 for h in history if h["es_health"] == "red"),
        "search_errors": summary["search_errors"],
        "produce_outage_s": summary["max_unavailable_seconds"]["produce"],
        "lost": summary["lost_acknowledged"] + summary["lost_accepted"] + summary["syslog_udp_unreceived"],
        "evictions_refused": world.evictions_refused,
    }


def main() -> None:
    seeds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    for seed in range(1, seeds + 1):
        for mode, settings in MODES.items():  # paired: the same seed, the same platform, each way
            runs[mode].append(one(seed, settings))
    print(f"Kubernetes 1.33 -> 1.34 on the sim platform, {seeds} seeds, paired (SIMULATED seconds)")
    print(f"{'mode':24} {'whole run':>10} {'node roll':>10} {'<minISR s':>10} {'red s':>7} {'search err':>11} "
          f"{'produce out':>12} {'lost':>5}")  # fmt: skip
    for mode, rs in runs.items():
        print(
            f"{mode:24} {statistics.median(r['total'] for r in rs):10.0f} "
            f"{statistics.median(r['nodes'] for r in rs):10.0f} {sum(r['below_min_isr_s'] for r in rs):10d} "
            f"{sum(r['red_s'] for r in rs):7d} {sum(r['search_errors'] for r in rs):11d} "
            f"{max(r['produce_outage_s'] for r in rs):11.0f}s {sum(r['lost'] for r in rs):5d}"
        )
    gated, auto, pdb = (runs[m] for m in MODES)
    ratio = [g["nodes"] / p["nodes"] for g, p in zip(gated, pdb, strict=True)]
    ratio_auto = [a["nodes"] / p["nodes"] for a, p in zip(auto, pdb, strict=True)]
    ratio_total = [g["total"] / p["total"] for g, p in zip(gated, pdb, strict=True)]
    print(
        f"node roll, gated / PDB-only: median {statistics.median(ratio):.2f}x (range {min(ratio):.2f}-"
        f"{max(ratio):.2f}); --parallel auto: {statistics.median(ratio_auto):.2f}x; whole run (with the control "
        f"plane): {statistics.median(ratio_total):.2f}x"
    )
    print(
        "the PDB-only drain, over all seeds: "
        f"{sum(r['below_min_isr_s'] for r in pdb)} s with a partition under min.insync.replicas "
        f"(the gated rolls: {sum(r['below_min_isr_s'] for r in gated + auto)}), "
        f"{sum(r['red_s'] for r in pdb)} s of red Elasticsearch ({sum(r['red_s'] for r in gated + auto)}), "
        f"{sum(r['search_errors'] for r in pdb)} failed searches ({sum(r['search_errors'] for r in gated + auto)}), "
        f"longest produce outage {max(r['produce_outage_s'] for r in pdb):.0f} s "
        f"({max(r['produce_outage_s'] for r in gated + auto):.0f} s), "
        f"{sum(r['lost'] for r in pdb)} events lost ({sum(r['lost'] for r in gated + auto)}), "
        f"{sum(r['evictions_refused'] for r in pdb)} evictions refused by PDBs"
    )


if __name__ == "__main__":
    main()
