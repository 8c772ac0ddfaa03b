"""Version-path rules: which upgrades, downgrades and rollbacks may start, decided before anything moves.

Rules (upgrade-gates.md), each a fatal verdict when broken:
- The target version must be in the catalog.
- Paths are validated against the LOWEST version running anywhere in the component (ECK #5258): a half-finished
  upgrade cannot be used to jump further than its oldest member could.
- No downgrade through `upgrade run`: a target below the highest running version is a rollback, which has its own
  command and its own rules.
- Elasticsearch: no major skip, no overlapping major upgrades, majors through the last minors
  (7.17 -> 8.x; 9.0 needs 8.18; 9.1 and later need 8.19) — the exact minimums live in the catalog's rules.
- A component's own rules come from its driver (`path_rules`, `rollback_rules`): Kafka 4.x only from KRaft and
  never below the finalized metadata.version; rollback of Kafka only while metadata.version has not been raised
  beyond what the older binary supports, of Elasticsearch only while no newer node has joined.
"""

from __future__ import annotations

from collections.abc import Iterable

from toolkit.catalog import Catalog, parse_version
from toolkit.model import PlatformState, Verdict


def metadata_level(text: str) -> tuple[int, int, int]:
    """'4.0-IV3' -> (4, 0, 3); comparable across releases. Raises ValueError for other text."""
    try:
        release, _, iv = text.partition("-IV")
        major, minor = release.split(".")
        return int(major), int(minor), int(iv or 0)
    except ValueError:
        raise ValueError(f"metadata.version {text!r} is not of the form MAJOR.MINOR-IVn (e.g. 4.0-IV3)") from None


def running_versions(state: PlatformState, component: str, data_plane_versions: Iterable[str] = ()) -> list[str]:
    """Versions that members of the component run now: the pods' version labels, plus what its data plane reports
    (Kafka nodes, joined Elasticsearch nodes), lowest first."""
    versions = {p.version for w in state.workloads_of(component) for p in w.pods if p.version}
    versions |= set(data_plane_versions)
    return sorted(versions, key=parse_version)


def check_upgrade_path(
    catalog: Catalog, component: str, running: list[str], target: str, component_rule: Verdict | None = None
) -> Verdict:
    """The catalog's generic rules, then the component's own (`component_rule`, from its driver)."""
    name = component
    spec = catalog.component(name)
    rule = f"{name}.version-path"
    if target not in spec.versions:
        known = ", ".join(spec.sorted_versions())
        return Verdict.refuse(
            f"{name}.unknown-version",
            f"{name} {target} is not in the catalog (known: {known}); pick one of those or add it to "
            "toolkit/catalog/catalog.yaml",
        )
    if not running:
        return Verdict.passed(rule, f"no {name} member runs yet: {target} is installed fresh")
    lowest, highest = running[0], running[-1]
    t = parse_version(target)
    if t < parse_version(highest):
        return Verdict.refuse(
            f"{name}.no-downgrade",
            f"{name} {target} is older than {highest}, which already runs: a downgrade is not an upgrade; "
            f"use `toolkit upgrade rollback` (it checks whether returning is still possible)",
        )
    low = parse_version(lowest)
    majors = {parse_version(v)[0] for v in running}
    if len(majors) > 1 and t[0] > max(majors):
        return Verdict.refuse(
            f"{name}.overlapping-majors",
            f"{name} runs majors {sorted(majors)} at once ({lowest} .. {highest}); finish that upgrade to "
            f"{highest} before starting another major upgrade to {target}",
        )
    if t[0] - low[0] > 1:
        return Verdict.refuse(
            f"{name}.major-skip",
            f"{name} {lowest} -> {target} skips a major version; upgrade to the last minor of {low[0] + 1}.x first",
        )
    if t[0] > low[0]:
        needed = spec.rules.min_source_for_major.get(str(t[0]))
        if needed and low < parse_version(needed):
            return Verdict.refuse(
                rule,
                f"{name} {target} needs every member at {needed} or later first; the lowest running is "
                f"{lowest}: upgrade to {needed} (or later {low[0]}.x) first",
            )
    minimum = spec.rules.min_source_for_minor.get(f"{t[0]}.{t[1]}")
    if minimum and low < parse_version(minimum) and low[0] < t[0]:
        return Verdict.refuse(
            rule,
            f"{name} {target} can only be reached from {minimum} or later; the lowest running is {lowest}: "
            f"upgrade to {minimum} first",
        )
    if component_rule is not None and not component_rule.ok:
        return component_rule
    if parse_version(lowest) == t and lowest == highest:
        return Verdict.passed(rule, f"{name} already runs {target} everywhere")
    return Verdict.passed(rule, f"{name} {lowest} -> {target} is an allowed path")


def check_rollback_target(catalog: Catalog, component: str, previous: str) -> Verdict:
    """The generic half of a rollback check: a recorded previous version that the catalog still knows. The
    component's own half is its driver's `rollback_rules`."""
    rule = f"{component}.rollback"
    if not previous:
        return Verdict.refuse(
            rule,
            f"{component} has no recorded previous version (no upgrade by this toolkit to roll back); "
            "use `toolkit upgrade run --to` with the version you want",
        )
    if previous not in catalog.component(component).versions:
        return Verdict.refuse(rule, f"{component} previous version {previous} is no longer in the catalog")
    return Verdict.passed(rule, f"{component} {previous} is in the catalog")
