"""Version-path rules: which upgrades, downgrades and rollbacks may start, decided before anything moves.

Rules (upgrade-gates.md), each a fatal verdict when broken:
- The target version must be in the catalog.
- Paths are validated against the LOWEST version running anywhere in the component (ECK #5258): a half-finished
  upgrade cannot be used to jump further than its oldest member could.
- No downgrade through `upgrade run`: a target below the highest running version is a rollback, which has its own
  command and its own rules.
- Elasticsearch: no major skip, no overlapping major upgrades, majors through the last minors
  (7.17 -> 8.x; 9.0 needs 8.18; 9.1 and later need 8.19) — the exact minimums live in the catalog's rules.
- Kafka: 4.x only from 3.3 or later running KRaft; the target must support the finalized metadata.version.
- Rollback: Kafka only while metadata.version has not been raised beyond what the older binary supports;
  Elasticsearch only while no node of the newer version has joined (replicas never allocate from new to old nodes).
"""

from __future__ import annotations

from toolkit.catalog import Catalog, parse_version
from toolkit.model import Component, PlatformState, Verdict


def metadata_level(text: str) -> tuple[int, int, int]:
    """'4.0-IV3' -> (4, 0, 3); comparable across releases. Raises ValueError for other text."""
    try:
        release, _, iv = text.partition("-IV")
        major, minor = release.split(".")
        return int(major), int(minor), int(iv or 0)
    except ValueError:
        raise ValueError(f"metadata.version {text!r} is not of the form MAJOR.MINOR-IVn (e.g. 4.0-IV3)") from None


def running_versions(state: PlatformState, component: Component) -> list[str]:
    """Versions that members of the component run now (pods, Kafka nodes, Elasticsearch nodes)."""
    versions = {p.version for w in state.workloads_of(component) for p in w.pods if p.version}
    if component is Component.KAFKA:
        versions |= {n.version for n in state.kafka.nodes if n.version}
    elif component is Component.ELASTICSEARCH:
        versions |= {n.version for n in state.elasticsearch.nodes if n.version and n.joined}
    return sorted(versions, key=parse_version)


def check_upgrade_path(
    catalog: Catalog, component: Component, running: list[str], target: str, metadata_version: str = ""
) -> Verdict:
    name = component.value
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
    if component is Component.KAFKA:
        for v in running:
            info = spec.versions.get(v)
            if info is not None and not info.kraft and t[0] >= 4:
                return Verdict.refuse(
                    rule,
                    f"kafka {v} runs ZooKeeper mode; kafka {target} runs KRaft only: migrate to KRaft on 3.x first",
                )
        target_mv = spec.versions[target].metadata_version
        if metadata_version and target_mv and metadata_level(target_mv) < metadata_level(metadata_version):
            return Verdict.refuse(
                "kafka.metadata-version",
                f"kafka {target} supports metadata.version up to {target_mv}, but {metadata_version} is finalized "
                "and cannot be lowered; choose a version that supports it",
            )
    if parse_version(lowest) == t and lowest == highest:
        return Verdict.passed(rule, f"{name} already runs {target} everywhere")
    return Verdict.passed(rule, f"{name} {lowest} -> {target} is an allowed path")


def check_rollback(catalog: Catalog, component: Component, state: PlatformState, previous: str) -> Verdict:
    """May the component return to `previous` (the version before the last upgrade)?"""
    name = component.value
    rule = f"{name}.rollback"
    if not previous:
        return Verdict.refuse(
            rule,
            f"{name} has no recorded previous version (no upgrade by this toolkit to roll back); "
            "use `toolkit upgrade run --to` with the version you want",
        )
    spec = catalog.component(name)
    if previous not in spec.versions:
        return Verdict.refuse(rule, f"{name} previous version {previous} is no longer in the catalog")
    if component is Component.KAFKA:
        mv = state.kafka.metadata_version
        old_mv = spec.versions[previous].metadata_version
        if mv and old_mv and metadata_level(mv) > metadata_level(old_mv):
            return Verdict.refuse(
                rule,
                f"metadata.version {mv} is finalized and kafka {previous} supports at most {old_mv}; "
                "metadata.version cannot be lowered, so a binary rollback is no longer possible: "
                "restore from a backup or roll forward",
            )
        return Verdict.passed(
            rule,
            f"metadata.version {mv or 'unknown'} is still supported by kafka {previous}: rollback allowed",
        )
    if component is Component.ELASTICSEARCH:
        newer = [
            n.name
            for n in state.elasticsearch.nodes
            if n.joined and n.version and parse_version(n.version) > parse_version(previous)
        ]
        if newer:
            return Verdict.refuse(
                rule,
                f"elasticsearch node {newer[0]} already joined on a newer version ({len(newer)} in all): replicas "
                f"cannot be allocated from newer to older nodes, so a node rolled back to {previous} would hold "
                "nothing; restore from a snapshot instead",
            )
        return Verdict.passed(rule, f"no elasticsearch node newer than {previous} has joined: rollback allowed")
    return Verdict.passed(rule, f"{name} is stateless: rollback to {previous} allowed")
