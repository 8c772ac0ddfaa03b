"""The rehearsal verdict: a pure function of what the load saw and how the upgrade ended.

A rehearsal passes only when the upgrade completed, nothing was lost on any path, nothing was stored twice and
Elasticsearch never went red. Unavailability (produce errors, search errors, the longest outage per path) is always
reported; it fails the rehearsal only when a bound is given for it.

Lost, per path:
- produce path: probe messages Kafka acknowledged (acks=all) that the consumer never read;
- ingest path: syslog events a receiver accepted that never reached Elasticsearch, plus UDP events sent while no
  receiver could take them (plain syslog has no acknowledgement: such an event is gone for good).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Verdict:
    passed: bool
    reasons: tuple[str, ...]
    lost: int
    duplicated: int


def judge(summary: dict[str, Any], outcome: str, max_unavailable_bound: float | None = None) -> Verdict:
    reasons: list[str] = []
    lost = int(summary["lost_acknowledged"]) + int(summary["lost_accepted"]) + int(summary["syslog_udp_unreceived"])
    duplicated = int(summary["duplicated"])
    if outcome != "completed":
        reasons.append(f"the upgrade did not complete (outcome: {outcome})")
    if summary["lost_acknowledged"]:
        reasons.append(f"{summary['lost_acknowledged']} acknowledged probe messages were never consumed")
    if summary["lost_accepted"]:
        reasons.append(f"{summary['lost_accepted']} accepted syslog events never reached Elasticsearch")
    if summary["syslog_udp_unreceived"]:
        reasons.append(
            f"{summary['syslog_udp_unreceived']} UDP syslog events were sent but no receiver took them "
            f"(longest time with no receiver ready: {summary['max_unavailable_seconds']['ingest']:.0f} s)"
        )
    if duplicated:
        reasons.append(f"{duplicated} messages were delivered twice")
    if summary["out_of_order"]:
        reasons.append(f"{summary['out_of_order']} out-of-order deliveries")
    if summary["ever_red"]:
        reasons.append("Elasticsearch went red")
    if max_unavailable_bound is not None:
        for path, seconds in summary["max_unavailable_seconds"].items():
            if seconds > max_unavailable_bound:
                reasons.append(f"{path} path unavailable for {seconds:.0f} s (bound {max_unavailable_bound:.0f} s)")
    return Verdict(passed=not reasons, reasons=tuple(reasons), lost=lost, duplicated=duplicated)
