"""Verdicts, steps and plans: what the engine decided, as plain data that can be printed, saved and compared."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum


@dataclass(frozen=True, slots=True)
class Verdict:
    """The answer of one gate. `rule` is a stable identifier; `reason` is a sentence a person can act on.

    A verdict that is not ok is either a wait (the state may still change: re-check until the step's timeout) or
    fatal (no amount of waiting helps: refuse before anything moves, or halt).
    """

    ok: bool
    rule: str
    reason: str
    fatal: bool = False

    @staticmethod
    def passed(rule: str, reason: str) -> Verdict:
        return Verdict(True, rule, reason)

    @staticmethod
    def wait(rule: str, reason: str) -> Verdict:
        return Verdict(False, rule, reason)

    @staticmethod
    def refuse(rule: str, reason: str) -> Verdict:
        return Verdict(False, rule, reason, fatal=True)


def first_blocking(verdicts: list[Verdict] | tuple[Verdict, ...]) -> Verdict | None:
    """The first fatal verdict if any, else the first wait, else None."""
    fatal = next((v for v in verdicts if not v.ok and v.fatal), None)
    return fatal or next((v for v in verdicts if not v.ok), None)


class StepKind(StrEnum):
    """The step kinds of the built-in components; a driver may use its own kinds (a step's kind is a string)."""

    REPAIR = "repair"  # undo what an interrupted step left behind (allocation disabled, a shutdown record)
    APPLY_SPEC = "apply-spec"  # change the workloads' spec to the target version; pods do not restart yet
    RESTART = "restart"  # restart exactly these members (one, or a batch that shares nothing)
    RECOVER = "recover"  # a member already on the new revision that is not Ready: wait for it (restarting it again
    # within its budget) before anything else moves
    ROLL = "roll"  # let a Deployment roll through its own strategy, gated on readiness and lag
    FINALIZE = "finalize"  # Kafka: raise metadata.version once every node runs the new version
    CONTROL_PLANE = "control-plane"  # Kubernetes: the control plane moves one minor
    ADDON = "addon"  # Kubernetes: an EKS add-on moves to the version of the control plane's minor
    REPLACE_NODE = "replace-node"  # Kubernetes: surge a replacement, cordon, evict pod by pod behind the gates,
    # terminate the old node (one node, or a batch whose pods share no partition and no shard)


# Kinds whose steps of one component and phase may be taken in any order: when the first cannot go yet, another
# goes first and the first is re-checked later (Strimzi's re-queue), never skipped.
REQUEUED_KINDS = frozenset({StepKind.RESTART, StepKind.REPLACE_NODE})


@dataclass(frozen=True, slots=True)
class Step:
    kind: str  # a StepKind, or a kind of the component's driver
    component: str
    members: tuple[str, ...]  # pods (restart), workloads (apply-spec, roll), or what is repaired
    version: str
    reason: str
    blocked: Verdict | None = None  # what would stop this step if it were next now (for the printed plan)
    phase: int = 0  # steps of one component and phase may be taken in any order when the first one cannot roll yet
    detail: str = ""  # e.g. "allocation" or "shutdown:es-hot-1" for repairs, "4.1-IV1" for finalize

    @property
    def id(self) -> str:
        return f"{self.component}/{self.kind}/{'+'.join(self.members)}"


@dataclass(frozen=True, slots=True)
class Plan:
    environment: str
    simulated: bool
    targets: tuple[tuple[str, str], ...]  # (component, version) in upgrade order
    steps: tuple[Step, ...] = ()
    refusals: tuple[Verdict, ...] = ()  # fatal: nothing may move
    warnings: tuple[Verdict, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def refused(self) -> bool:
        return bool(self.refusals)

    @property
    def done(self) -> bool:
        return not self.refused and not self.steps


@dataclass(frozen=True, slots=True)
class UpgradeSettings:
    """How an upgrade runs. Times are seconds on the target's clock."""

    parallel: str = "none"  # "none" | "auto": brokers that share no partition restart together
    max_batch: int = 0  # 0 = no cap for --parallel auto
    finalize: bool = False  # Kafka: raise metadata.version once every node runs the new version
    es_max_unavailable: int = 1
    accept_unavailable_indices: tuple[str, ...] = ()  # Elasticsearch indices with 0 replicas the user accepts
    # being unavailable while the node holding each shard restarts (otherwise the plan refuses them)
    lag_bound: int = 50_000
    poll_interval: float = 5.0  # how often state is observed while waiting
    confirm_seconds: float = 10.0  # a recovered member must stay healthy this long before the next step
    gate_timeout: float = 900.0  # how long a step may wait for its gates before the run halts
    step_timeout: float = 900.0  # how long a member may take to recover after its restart
    pace_seconds: float = 0.0  # pause between steps
    restart_budget: int = 2  # restarts the engine may issue to one member in one run
    action_retries: int = 3  # retries of a failed action (API errors) before the run halts
    skip_gates: bool = False  # unsafe: only for negative controls on sim and local
    rollback: bool = False  # targets are previous versions: rollback rules replace the upgrade-path rules

    def problems(self) -> list[tuple[str, str]]:
        """Every setting that cannot work, as (field, why); empty when the settings are usable. Durations must be
        finite; the poll interval must be positive (a zero or NaN poll would spin). A `why` may name another
        setting as `{field}`, for the caller to spell as its users know it (an option, a key)."""
        out: list[tuple[str, str]] = []
        if self.parallel not in ("none", "auto"):
            out.append(("parallel", f"{self.parallel!r} is not supported: use none or auto"))
        for name in ("pace_seconds", "gate_timeout", "step_timeout", "confirm_seconds", "poll_interval"):
            value = getattr(self, name)
            if not math.isfinite(value):
                out.append((name, f"{value} is not a finite number of seconds"))
            elif value < 0 or (name == "poll_interval" and value <= 0):
                out.append((name, f"{value} must be {'> 0' if name == 'poll_interval' else '>= 0'} seconds"))
        if self.restart_budget < 1:
            out.append(("restart_budget", f"{self.restart_budget} must be >= 1 (one restart per member is the roll)"))
        if self.max_batch < 0:
            out.append(("max_batch", f"{self.max_batch} must be >= 0 (0 = no cap)"))
        if self.max_batch and self.parallel != "auto":
            out.append(("max_batch", "needs {parallel} auto"))
        if self.lag_bound < 0:
            out.append(("lag_bound", f"{self.lag_bound} must be >= 0"))
        if self.es_max_unavailable < 1:
            out.append(("es_max_unavailable", f"{self.es_max_unavailable} must be >= 1"))
        if self.action_retries < 0:
            out.append(("action_retries", f"{self.action_retries} must be >= 0"))
        return out
