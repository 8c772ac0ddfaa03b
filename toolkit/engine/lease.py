"""Who may drive an environment: one lease holder at a time, renewed while it works, expiring when it stops.

A holder is named `user@host/pid`. The lease may be taken when nobody holds it, when it expired, when the holder
asks again (resume within one process), or when the holder was a process on this same host that no longer runs
(the same command re-run after a SIGKILL resumes at once instead of waiting for expiry). Everyone else is refused
with who holds it, since when, and when it expires. The decision is pure; the target stores the lease with the
platform and swaps it with compare-and-swap so two orchestrators cannot both win.
"""

from __future__ import annotations

from toolkit.model import Lease, Verdict

DEFAULT_TTL = 60.0


def host_of(holder: str) -> str:
    return holder.split("/", 1)[0]


def may_acquire(existing: Lease | None, holder: str, now: float, existing_alive: bool) -> Verdict:
    rule = "lease.single-holder"
    if existing is None:
        return Verdict.passed(rule, "no orchestrator holds this environment")
    if existing.holder == holder:
        return Verdict.passed(rule, f"{holder} already holds the lease")
    if existing.expired(now):
        return Verdict.passed(rule, f"the lease of {existing.holder} expired; taking it over")
    if host_of(existing.holder) == host_of(holder) and not existing_alive:
        return Verdict.passed(rule, f"{existing.holder} no longer runs on this host; taking its lease over")
    expires_in = existing.renewed_at + existing.ttl_seconds - now
    return Verdict.refuse(
        rule,
        f"{existing.holder} holds the lease on this environment (renewed {now - existing.renewed_at:.0f} s ago, "
        f"expires in {expires_in:.0f} s unless renewed): only one orchestrator may roll a platform; wait for it "
        "to finish (`toolkit upgrade status`), or if it died on another host, wait for the lease to expire",
    )


def acquire(existing: Lease | None, holder: str, now: float, ttl: float = DEFAULT_TTL) -> Lease:
    acquired = existing.acquired_at if existing is not None and existing.holder == holder else now
    return Lease(holder=holder, acquired_at=acquired, renewed_at=now, ttl_seconds=ttl)
