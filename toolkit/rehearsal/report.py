"""Rehearsal reports: the JSON document, JUnit XML, a human table, and a timeline picture.

The timeline puts on one time axis: throughput (acknowledged probe messages/s, indexed events/s), indexer lag,
Elasticsearch health and each path's availability, and every restart the engine issued.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class RehearsalReport:
    run_id: str
    environment: str
    simulated: bool
    from_versions: dict[str, str]
    to_versions: dict[str, str]
    rate: float
    syslog_rate: float
    unsafe_skip_gates: bool
    outcome: str
    outcome_reason: str
    passed: bool
    reasons: list[str]
    summary: dict[str, Any]
    steps: list[dict[str, Any]]
    restarts: list[tuple[float, str]] = field(default_factory=list)
    timeline: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the figures rest on (a simulated part, live-only figures)
    # live rehearsals: the data plane at every observation the engine made (toolkit.rehearsal.observed)
    data_plane: dict[str, Any] | None = None
    data_plane_simulated: bool = False

    def as_dict(self) -> dict[str, Any]:
        s = self.summary
        return {
            "run_id": self.run_id,
            "environment": self.environment,
            "simulated": self.simulated,
            "from": self.from_versions,
            "to": self.to_versions,
            "rate": self.rate,
            "syslog_rate": self.syslog_rate,
            "unsafe_skip_gates": self.unsafe_skip_gates,
            "passed": self.passed,
            "reasons": self.reasons,
            "upgrade_outcome": self.outcome,
            "upgrade_reason": self.outcome_reason,
            "notes": self.notes,
            "produced": s["produced"],
            "acknowledged": s["acknowledged"],
            "consumed": s["consumed"],
            "lost": int(s["lost_acknowledged"]) + int(s["lost_accepted"]) + int(s["syslog_udp_unreceived"]),
            "lost_by_path": {
                "acknowledged_not_consumed": s["lost_acknowledged"],
                "accepted_not_stored": s["lost_accepted"],
                "udp_sent_while_no_receiver": s["syslog_udp_unreceived"],
            },
            "duplicated": s["duplicated"],
            "out_of_order": s["out_of_order"],
            "produce_errors": s["produce_errors"],
            "search_errors": s["search_errors"],
            "search_probes": s["search_probes"],
            "syslog": {
                "sent": s["syslog_sent"],
                "sent_udp": s["syslog_sent_udp"],
                "sent_tcp": s["syslog_sent_tcp"],
                "accepted": s["accepted"],
                "stored": s["stored"],
                "tcp_refused_seconds": s["syslog_tcp_refused_seconds"],
            },
            "elasticsearch_ever_red": s["ever_red"],
            "elasticsearch_health_timeline": _health_spans(self.timeline),
            "max_unavailable_seconds": s["max_unavailable_seconds"],
            **(
                {"data_plane_observed": {**self.data_plane, "simulated": self.data_plane_simulated}}
                if self.data_plane is not None
                else {}
            ),
            "steps": self.steps,
        }


def _health_spans(timeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
    spans: list[dict[str, Any]] = []
    for sample in timeline:
        if spans and spans[-1]["health"] == sample["health"]:
            spans[-1]["until"] = sample["t"]
        else:
            spans.append({"health": sample["health"], "from": sample["t"], "until": sample["t"]})
    return spans


def write_json(report: RehearsalReport, path: Path) -> None:
    path.write_text(json.dumps(report.as_dict(), indent=2))


def junit_xml(report: RehearsalReport) -> str:
    suite = ET.Element("testsuite", name=f"rehearsal {report.environment}", timestamp=report.run_id)
    doc = report.as_dict()
    checks = [
        ("upgrade completed", report.outcome == "completed", report.outcome_reason),
        ("nothing lost", doc["lost"] == 0, json.dumps(doc["lost_by_path"])),
        ("nothing duplicated", doc["duplicated"] == 0, f"{doc['duplicated']} duplicated"),
        ("nothing out of order", doc["out_of_order"] == 0, f"{doc['out_of_order']} out of order"),
        ("elasticsearch never red", not doc["elasticsearch_ever_red"], "health went red"),
    ]
    observed = doc.get("data_plane_observed")
    if observed is not None:
        checks.append(
            (
                "data plane never under min.insync.replicas, offline or red",
                not (observed["max_under_min_isr"] or observed["max_offline"] or observed["ever_red"]),
                json.dumps(observed),
            )
        )
    for step in report.steps:
        checks.append((f"step {step['id']}", step["outcome"] == "done", step.get("message", "")))
    failures = 0
    for name, ok, message in checks:
        case = ET.SubElement(suite, "testcase", classname="toolkit.rehearsal", name=name)
        if not ok:
            failures += 1
            ET.SubElement(case, "failure", message=message or name)
    suite.set("tests", str(len(checks)))
    suite.set("failures", str(failures))
    return ET.tostring(suite, encoding="unicode")


def print_table(report: RehearsalReport) -> None:
    from rich.markup import escape

    from toolkit import tables

    con = tables.console()
    doc = report.as_dict()
    if report.simulated:
        con.print("[bold yellow]SIMULATED platform and SIMULATED load (virtual clock): not a real cluster[/]")
    if report.unsafe_skip_gates:
        con.print("[bold red]UNSAFE: health gates were skipped (negative control)[/]")
    table = tables.table(title=f"rehearsal {report.run_id} on {report.environment}")
    tables.text_column(table, "measure")
    tables.identifier_column(table, "value", justify="right")
    rows = [
        ("produced", doc["produced"]),
        ("acknowledged", doc["acknowledged"]),
        ("consumed", doc["consumed"]),
        ("lost", doc["lost"]),
        ("duplicated", doc["duplicated"]),
        ("out of order", doc["out_of_order"]),
        ("produce errors", doc["produce_errors"]),
        (
            "syslog sent / accepted / stored",
            f"{doc['syslog']['sent']} / {doc['syslog']['accepted']} / {doc['syslog']['stored']}",
        ),
        ("search errors", f"{doc['search_errors']} of {doc['search_probes']}"),
        ("elasticsearch ever red", doc["elasticsearch_ever_red"]),
    ]
    for path, seconds in doc["max_unavailable_seconds"].items():
        rows.append((f"max unavailable, {path} path", f"{seconds:.0f} s"))
    observed = doc.get("data_plane_observed")
    if observed is not None:
        plane = "simulated data plane" if observed["simulated"] else "data plane"
        rows += [
            (
                f"{plane}: observations (every)",
                f"{observed['observations']} ({observed['interval_seconds']:.1f} s)",
            ),
            (
                f"{plane}: partitions under min ISR",
                f"max {observed['max_under_min_isr']}, {observed['under_min_isr_seconds']:.0f} s",
            ),
            (f"{plane}: offline partitions", f"max {observed['max_offline']}, {observed['offline_seconds']:.0f} s"),
            (f"{plane}: elasticsearch red", f"{observed['red_seconds']:.0f} s"),
        ]
    for name, value in rows:
        table.add_row(name, str(value))
    con.print(table)
    steps = [
        tables.StepRow(
            component=step["component"],
            kind=step["kind"],
            members=step["members"],
            took=f"{step['duration_seconds']:.0f}s",
            outcome=step["outcome"],
            waits=[(g["rule"], g["seconds"]) for g in step["gates_waited"]],
        )
        for step in report.steps
    ]
    con.print(tables.steps_table(steps, con.width, title="steps"))
    for note in report.notes:
        con.print(f"note: {escape(note)}")
    verdict = "[bold green]PASSED[/]" if report.passed else "[bold red]FAILED[/]"
    con.print(f"{verdict} " + escape("; ".join(report.reasons) or "nothing lost, nothing duplicated, never red"))


def draw_timeline(report: RehearsalReport, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tl = report.timeline
    t = [s["t"] for s in tl]
    fig, axes = plt.subplots(4, 1, sharex=True, figsize=(12, 8), height_ratios=[3, 2, 1.4, 1.4])
    title = f"rehearsal {report.run_id} on {report.environment}"
    if report.simulated:
        title += " (SIMULATED)"
    if report.unsafe_skip_gates:
        title += " — UNSAFE, gates skipped"
    fig.suptitle(title)
    ax = axes[0]
    ax.plot(t, [s["acked_per_s"] for s in tl], label="acknowledged probe msgs/s", linewidth=0.8)
    ax.plot(t, [s["indexed_per_s"] for s in tl], label="indexed events/s", linewidth=0.8)
    ax.set_ylabel("throughput /s")
    ax.legend(loc="upper right", fontsize=8)
    axes[1].plot(t, [s["lag"] for s in tl], color="tab:purple", linewidth=0.8)
    axes[1].set_ylabel("indexer lag")
    colours = {"green": "tab:green", "yellow": "gold", "red": "tab:red", "unknown": "grey"}
    for span in _health_spans(tl):
        axes[2].axvspan(span["from"], span["until"] + 1, color=colours.get(span["health"], "grey"), linewidth=0)
    axes[2].set_yticks([])
    axes[2].set_ylabel("ES health", rotation=0, ha="right", va="center")
    for row, key in enumerate(("produce_ok", "search_ok", "ingest_ok")):
        down = [s["t"] for s in tl if not s[key]]
        axes[3].scatter(down, [row] * len(down), marker="|", color="tab:red", s=60)
    axes[3].set_yticks([0, 1, 2], ["produce", "search", "ingest"])
    axes[3].set_ylim(-0.7, 2.7)
    axes[3].set_ylabel("unavailable", rotation=0, ha="right", va="center")
    axes[3].set_xlabel("seconds since the load started")
    for at, pod in report.restarts:
        for a in axes:
            a.axvline(at, color="black", alpha=0.25, linewidth=0.6)
        axes[0].annotate(
            pod, (at, 0), xycoords=("data", "axes fraction"), rotation=90, fontsize=6, alpha=0.7, va="bottom"
        )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
