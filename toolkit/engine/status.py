"""What a run shows to people while and after it runs, folded from the executor's events: the phase, the step, the
gate it waits on, progress and Kubernetes-style conditions (Strimzi's and ECK's `status`), plus the notices worth a
Kubernetes Event on the objects the run touches (a restart, a gate wait, a pause, a halt, a completion).

Pure: no I/O, no client library. `RunStatus.apply(event)` updates the picture and returns the notices; the adapters
write it (`toolkit.engine.ports.StatusPort`: a ConfigMap on Kubernetes, a file of the simulated platform) and
`toolkit.targets.run_reporting` decides *when* (on transitions, at most every few seconds while waiting).

It is never read back to decide anything: the engine plans from observed state only. A reader that finds an active
phase while no orchestrator holds the lease is looking at a run that died without writing its outcome (`stale`).

Phases: Idle (no run has written a status), Planning, Running, WaitingOnGate, Paused (active), then Completed,
Halted, Stopped or Refused. Conditions (type, status "True"/"False", reason in CamelCase, message,
lastTransitionTime, which changes only when the status flips, as in Kubernetes):
- Progressing: True while a run holds the platform; False once it ended (reason RunCompleted, RunHalted, ...).
- GateBlocked: True while the run waits on a gate (reason = the rule id in CamelCase, e.g. KafkaRecovered).
- Paused: True while a pause request holds the run.
- Completed: True when the run ended with every component on its target version.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from toolkit.engine.executor import Event
from toolkit.model import Notice

IDLE, PLANNING, RUNNING, WAITING, PAUSED = "Idle", "Planning", "Running", "WaitingOnGate", "Paused"
HALTED, STOPPED, COMPLETED, REFUSED = "Halted", "Stopped", "Completed", "Refused"
PHASES = (IDLE, PLANNING, RUNNING, WAITING, PAUSED, HALTED, STOPPED, COMPLETED, REFUSED)
ACTIVE_PHASES = frozenset({PLANNING, RUNNING, WAITING, PAUSED})
PHASE_OF_OUTCOME = {"completed": COMPLETED, "halted": HALTED, "stopped": STOPPED, "refused": REFUSED}
TERMINAL_EVENTS = frozenset({"halt", "stop", "done"})
CONDITION_TYPES = ("Progressing", "GateBlocked", "Paused", "Completed")
BEFORE_STEP, PROMISED_STATE = "before-step", "promised-state"
SCHEMA = "toolkit.io/upgrade-status/v1"
MESSAGE_LIMIT = 1024  # a Kubernetes Event's note is at most 1 kB; the status messages follow the same bound


def rfc3339(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def camel_reason(rule: str) -> str:
    """A rule id as a Kubernetes condition reason (CamelCase, letters and digits): kafka.voter-caught-up ->
    KafkaVoterCaughtUp."""
    words = [w for part in rule.replace("_", "-").split(".") for w in part.split("-") if w]
    text = "".join(w[:1].upper() + w[1:] for w in words if w.isalnum())
    return text if text[:1].isalpha() else f"Rule{text}"


def step_members(step_id: str) -> tuple[str, tuple[str, ...]]:
    """(component, members) of a step id `component/kind/member+member` (`toolkit.model.Step.id`)."""
    parts = step_id.split("/", 2)
    if len(parts) < 3:
        return (parts[0] if parts else "", ())
    return parts[0], tuple(m for m in parts[2].split("+") if m)


def _clip(text: str) -> str:
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 3] + "..."


@dataclass(frozen=True)
class Condition:
    type: str
    status: str  # "True" | "False" | "Unknown"
    reason: str
    message: str
    last_transition_time: str

    def as_dict(self) -> dict[str, str]:
        return {
            "type": self.type,
            "status": self.status,
            "reason": self.reason,
            "message": self.message,
            "lastTransitionTime": self.last_transition_time,
        }


@dataclass(frozen=True)
class Gate:
    rule: str
    reason: str
    step: str
    stage: str  # before-step: it keeps the step from starting; promised-state: the step acted and waits for it
    since: str  # wall clock, RFC 3339
    since_at: float  # target clock


@dataclass
class RunStatus:
    """The picture of one run (see the module docstring); `wall` gives epoch seconds (injected: tests derive it from
    the virtual clock)."""

    environment: str
    simulated: bool
    holder: str
    targets: Mapping[str, str]
    wall: Callable[[], float]
    phase: str = PLANNING
    message: str = "observing the platform and planning"
    step: str = ""
    gate: Gate | None = None
    steps_done: int = 0
    steps_total: int = 0
    restarts: int = 0
    rule: str = ""
    started_at: str = ""
    updated_at: str = ""
    finished_at: str = ""
    conditions: dict[str, Condition] = field(default_factory=dict)
    _acted: str = ""  # the step that has acted since it started (a gate wait after it is for its promised state)
    _why: str = ""  # the current step's reason (its "step" event), repeated in the Events it is worth

    def __post_init__(self) -> None:
        now = rfc3339(self.wall())
        self.started_at = self.started_at or now
        self.updated_at = now
        if not self.conditions:
            self._condition("Progressing", "True", "Planning", self.message)
            self._condition("GateBlocked", "False", "NoGateBlocking", "no gate is blocking the run")
            self._condition("Paused", "False", "NotPaused", "no pause request")
            self._condition("Completed", "False", "InProgress", "the run has not ended")

    # ------------------------------------------------------------------ folding

    def key(self) -> tuple[Any, ...]:
        """What makes a transition: a change of phase, step, gate rule, progress or a condition's status."""
        return (
            self.phase,
            self.step,
            self.gate.rule if self.gate else "",
            self.steps_done,
            self.steps_total,
            tuple(c.status for c in self.conditions.values()),
        )

    def _condition(self, kind: str, status: str, reason: str, message: str) -> None:
        previous = self.conditions.get(kind)
        since = previous.last_transition_time if previous and previous.status == status else rfc3339(self.wall())
        self.conditions[kind] = Condition(kind, status, reason, _clip(message), since)

    def _progressing(self, reason: str, message: str) -> None:
        self._condition("Progressing", "True", reason, message)

    def _clear_gate(self) -> None:
        if self.gate is not None:
            self.gate = None
            self._condition("GateBlocked", "False", "GateCleared", "no gate is blocking the run")

    def _subjects(self, step_id: str) -> tuple[str, ...]:
        return step_members(step_id)[1]

    def apply(self, event: Event) -> list[Notice]:
        """Fold one event in; the Kubernetes Events it is worth."""
        self.updated_at = rfc3339(self.wall())
        self.steps_done, self.steps_total = event.progress
        kind, notices = event.kind, []
        components = tuple(self.targets)
        if kind == "plan":
            self.phase, self.message = PLANNING, event.message
            self._progressing("Planning", event.message)
        elif kind == "lease":
            self.phase, self.message = RUNNING, f"lease taken: {event.message}"
            self._progressing("LeaseTaken", self.message)
        elif kind == "step":
            self._clear_gate()
            self.phase, self.step, self._acted, self._why = RUNNING, event.step, "", event.message
            self.message = f"{event.step}: {event.message}"
            self._progressing("StepStarted", self.message)
        elif kind == "gate-wait":
            stage = PROMISED_STATE if self._acted == event.step else BEFORE_STEP
            previous = self.gate
            fresh = previous is None or (previous.rule, previous.step) != (event.rule, event.step)
            since, since_at = (
                (previous.since, previous.since_at)
                if previous is not None and not fresh
                else (rfc3339(self.wall()), event.at)
            )
            self.gate = Gate(event.rule, event.message, event.step, stage, since, since_at)
            self.phase, self.step = WAITING, event.step
            where = "before" if stage == BEFORE_STEP else "for the promised state of"
            self.message = f"waiting on {event.rule} {where} {event.step}: {event.message}"
            self._condition("GateBlocked", "True", camel_reason(event.rule), f"[{event.rule}] {event.message}")
            self._progressing("GateWait", self.message)
            if fresh and stage == BEFORE_STEP:
                notices.append(Notice("ToolkitGateWait", "Normal", _clip(self.message), self._subjects(event.step), ()))
        elif kind in ("requeue", "pace", "stop-requested"):
            self.message = event.message if not event.step else f"{event.step}: {event.message}"
            if kind == "requeue":
                self._clear_gate()
                self.phase = RUNNING
        elif kind == "act":
            self._clear_gate()
            self.phase, self._acted = RUNNING, event.step
            self.message = f"{event.step}: {event.message}"
            self._progressing("Acting", self.message)
            notices.extend(self._act_notices(event))
        elif kind == "recovered":
            self._clear_gate()
            self.phase, self.message = RUNNING, f"{event.step} done: {event.message}"
            self._progressing("StepDone", self.message)
        elif kind == "paused":
            self.phase, self.message = PAUSED, event.message
            self._condition("Paused", "True", "PauseRequested", event.message)
            self._progressing("Paused", event.message)
            notices.append(Notice("ToolkitPaused", "Normal", _clip(event.message), (), components))
        elif kind == "resumed":
            self.phase, self.message = RUNNING, event.message
            self._condition("Paused", "False", "Resumed", event.message)
            self._progressing("Resumed", event.message)
            notices.append(Notice("ToolkitResumed", "Normal", _clip(event.message), (), components))
        elif kind in TERMINAL_EVENTS:
            self.rule, self.message = event.rule, event.message  # the phase comes with the run's outcome (finish)
        return notices

    def _act_notices(self, event: Event) -> list[Notice]:
        what = event.message
        head = self._step_head(event.step)
        if what.startswith("restart "):
            self.restarts += 1
            pod = what.removeprefix("restart ").split(" ", 1)[0]
            return [Notice("ToolkitRestart", "Normal", _clip(f"restarting pod {pod}: {head}"), (pod,), ())]
        if what.startswith("roll deployment "):
            name = what.removeprefix("roll deployment ").split(" ", 1)[0]
            return [Notice("ToolkitRoll", "Normal", _clip(f"{what}: {head}"), (name,), ())]
        if what.startswith("apply ") and what.endswith(" spec"):
            return [Notice("ToolkitSpecApplied", "Normal", _clip(f"{what}: {head}"), self._subjects(event.step), ())]
        return []

    def _step_head(self, step_id: str) -> str:
        targets = ", ".join(f"{c}={v}" for c, v in self.targets.items())
        why = f" ({self._why})" if self._why and step_id == self.step else ""
        return f"step {step_id}{why} of the upgrade to {targets} by {self.holder}"

    def finish(self, outcome: str, rule: str, reason: str, steps: tuple[int, int] | None = None) -> list[Notice]:
        """The run ended with `outcome` (completed | halted | stopped | refused); the Events it is worth."""
        now = rfc3339(self.wall())
        self.updated_at = self.finished_at = now
        if steps is not None:
            self.steps_done, self.steps_total = steps
        self.phase = PHASE_OF_OUTCOME.get(outcome, HALTED)
        self.rule, self.message = rule, reason
        self._clear_gate()
        self._condition("Paused", "False", "RunEnded", "the run ended")
        ended = f"Run{self.phase}"
        self._condition("Progressing", "False", ended, f"[{rule}] {reason}")
        self._condition(
            "Completed",
            "True" if self.phase == COMPLETED else "False",
            ended,
            f"[{rule}] {reason}",
        )
        components = tuple(self.targets)
        targets = ", ".join(f"{c}={v}" for c, v in self.targets.items())
        progress = f"{self.steps_done}/{self.steps_total} steps done"
        message = _clip(f"upgrade to {targets} {outcome} ({progress}) [{rule}]: {reason}")
        if self.phase == COMPLETED:
            return [Notice("ToolkitCompleted", "Normal", message, (), components)]
        if self.phase == HALTED:
            on = self._subjects(self.step) if self.step else ()
            return [Notice("ToolkitHalted", "Warning", message, on, () if on else components)]
        if self.phase == STOPPED:
            return [Notice("ToolkitStopped", "Normal", message, (), components)]
        return [Notice("ToolkitRefused", "Warning", message, (), components)]

    # ------------------------------------------------------------------ documents

    def as_dict(self) -> dict[str, Any]:
        gate = self.gate
        return {
            "phase": self.phase,
            "message": self.message,
            "environment": self.environment,
            "simulated": self.simulated,
            "holder": self.holder,
            "targets": dict(self.targets),
            "step": self.step,
            "steps": {"done": self.steps_done, "total": self.steps_total},
            "restarts": self.restarts,
            "gate": (
                {"rule": gate.rule, "reason": gate.reason, "step": gate.step, "stage": gate.stage, "since": gate.since}
                if gate
                else None
            ),
            "rule": self.rule,
            "startedAt": self.started_at,
            "updatedAt": self.updated_at,
            "finishedAt": self.finished_at,
            "conditions": [c.as_dict() for c in self.conditions.values()],
        }

    def to_data(self) -> dict[str, str]:
        return to_data(self.as_dict())


def to_data(doc: Mapping[str, Any]) -> dict[str, str]:
    """A status document as ConfigMap data: flat string keys (for `kubectl get -o jsonpath='{.data.phase}'`) and the
    conditions as a YAML list (shown as a block by `kubectl get -o yaml`). Empty values are left out."""
    gate = doc.get("gate") or {}
    steps = doc.get("steps") or {}
    flat: dict[str, Any] = {
        "schema": SCHEMA,
        "phase": doc.get("phase", ""),
        "message": doc.get("message", ""),
        "environment": doc.get("environment", ""),
        "simulated": "true" if doc.get("simulated") else "false",
        "holder": doc.get("holder", ""),
        "targets": ",".join(f"{c}={v}" for c, v in (doc.get("targets") or {}).items()),
        "step": doc.get("step", ""),
        "stepsDone": str(steps.get("done", 0)),
        "stepsTotal": str(steps.get("total", 0)),
        "restarts": str(doc.get("restarts", 0)),
        "gate": gate.get("rule", ""),
        "gateReason": gate.get("reason", ""),
        "gateStep": gate.get("step", ""),
        "gateStage": gate.get("stage", ""),
        "gateSince": gate.get("since", ""),
        "rule": doc.get("rule", ""),
        "startedAt": doc.get("startedAt", ""),
        "updatedAt": doc.get("updatedAt", ""),
        "finishedAt": doc.get("finishedAt", ""),
        "conditions": yaml.safe_dump(list(doc.get("conditions") or []), sort_keys=False, width=1 << 20),
    }
    return {
        k: " ".join(str(v).split()) if k != "conditions" else str(v) for k, v in flat.items() if v not in ("", None)
    }


def from_data(data: Mapping[str, str]) -> dict[str, Any]:
    """The status document back from ConfigMap data (`to_data`), for `toolkit upgrade status`; tolerant of missing
    keys (an older or hand-edited object)."""
    try:
        conditions = yaml.safe_load(data.get("conditions", "") or "[]") or []
    except yaml.YAMLError:
        conditions = []
    if not isinstance(conditions, list):
        conditions = []

    def number(key: str) -> int:
        text = data.get(key, "0")
        return int(text) if text.isdigit() else 0

    targets = dict(item.partition("=")[::2] for item in data.get("targets", "").split(",") if "=" in item)
    gate = (
        {
            "rule": data.get("gate", ""),
            "reason": data.get("gateReason", ""),
            "step": data.get("gateStep", ""),
            "stage": data.get("gateStage", ""),
            "since": data.get("gateSince", ""),
        }
        if data.get("gate")
        else None
    )
    return {
        "phase": data.get("phase", IDLE),
        "message": data.get("message", ""),
        "environment": data.get("environment", ""),
        "simulated": data.get("simulated") == "true",
        "holder": data.get("holder", ""),
        "targets": targets,
        "step": data.get("step", ""),
        "steps": {"done": number("stepsDone"), "total": number("stepsTotal")},
        "restarts": number("restarts"),
        "gate": gate,
        "rule": data.get("rule", ""),
        "startedAt": data.get("startedAt", ""),
        "updatedAt": data.get("updatedAt", ""),
        "finishedAt": data.get("finishedAt", ""),
        "conditions": [c for c in conditions if isinstance(c, dict)],
    }
