"""The outermost edge of the Pulumi Automation API, replaced for tests: `create_or_select_stack` returns a stack
whose preview/up/outputs behave as the engine behind the Pulumi CLI would for this project.

What it models, and how:
- what the program declares: the REAL stacks/ program, run under Pulumi mocks for the selected stack
  (toolkit.provision.pulumi.capture), and the REAL stack outputs (`RegionOutputs.exports()`, resolved);
- state: per stack, the URN and inputs of every resource an `up` created, kept in this object across stack
  objects, so a second `toolkit region up` sees what the first one built (resumption);
- steps: create for a declared URN not in the state, update when its inputs differ, same otherwise, delete for a
  URN in the state the program no longer declares; each is emitted as an EngineEvent(ResourcePreEvent) to the
  caller's `on_event`, as the Automation API does;
- update plans: `preview(plan=PATH)` writes the planned (operation, URN) pairs to PATH; `up(plan=PATH)` raises
  CommandError, as the engine does, when an operation is not in the plan (before changing the state).
Knobs for tests: `extra_before_up` declares one more resource at `up` time (the program or the cloud changed
after the preview); `ignore_plan` makes `up` perform that extra step without refusing (a CLI that ignored
`--plan`); `fail_up` makes `up` fail part-way after creating the first `fail_up` resources.
Nothing here runs the Pulumi CLI; everything else in the toolkit runs for real.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi.automation import events
from pulumi.automation._cmd import CommandResult
from pulumi.automation._output import OutputValue
from pulumi.automation._stack import PreviewResult, UpdateSummary, UpResult
from pulumi.automation.errors import CommandError

from toolkit.config.region import load_region
from toolkit.provision.pulumi import capture, load_program

PROJECT = "region"


def urn(stack: str, type_: str, name: str) -> str:
    return f"urn:pulumi:{stack}::{PROJECT}::{type_}::{name}"


@dataclass
class StackState:
    resources: dict[str, str] = field(default_factory=dict)  # URN -> inputs fingerprint
    outputs: dict[str, Any] = field(default_factory=dict)


@dataclass
class FakeEngine:
    states: dict[str, StackState] = field(default_factory=dict)
    extra_before_up: bool = False
    ignore_plan: bool = False
    fail_up: int | None = None
    previews: int = 0
    ups: int = 0
    backends: list[str] = field(default_factory=list)

    def create_or_select_stack(self, stack_name: str, work_dir: str, opts: Any = None, **_: Any) -> FakeStack:
        env = dict(getattr(opts, "env_vars", None) or {})
        self.backends.append(env.get("PULUMI_BACKEND_URL", ""))
        return FakeStack(self, stack_name, Path(work_dir))


class FakeStack:
    def __init__(self, engine: FakeEngine, name: str, work_dir: Path) -> None:
        self.engine = engine
        self.name = name
        self.work_dir = work_dir
        self.state = engine.states.setdefault(name, StackState())

    # ------------------------------------------------------------------ the program, as the engine runs it

    def _declared(self, extra: bool) -> tuple[dict[str, tuple[str, str]], dict[str, Any]]:
        config = load_region(self.name, self.work_dir)
        module = load_program(self.work_dir)
        values: dict[str, Any] = {}

        def program() -> None:
            outputs = module.declare_region(config)
            pulumi.Output.from_input(outputs.exports()).apply(values.update)
            if extra:
                import pulumi_aws as aws

                aws.s3.Bucket("added-after-preview", tags={"owner": "x"})

        declared = {
            urn(self.name, r.type, r.name): (r.type, json.dumps(dict(r.inputs), sort_keys=True, default=str))
            for r in capture(program, stack=self.name)
        }
        return declared, values

    def _steps(self, declared: dict[str, tuple[str, str]]) -> list[tuple[str, str, str]]:
        steps = []
        for key, (type_, fingerprint) in declared.items():
            known = self.state.resources.get(key)
            op = "create" if known is None else ("same" if known == fingerprint else "update")
            steps.append((op, key, type_))
        for key in self.state.resources:
            if key not in declared:
                steps.append(("delete", key, key.split("::")[2]))
        return steps

    @staticmethod
    def _emit(on_event: Any, steps: list[tuple[str, str, str]]) -> None:
        if on_event is None:
            return
        for number, (op, key, type_) in enumerate(steps):
            metadata = events.StepEventMetadata(op=events.OpType(op), urn=key, type=type_, provider="")
            on_event(
                events.EngineEvent(
                    sequence=number,
                    timestamp=0,
                    resource_pre_event=events.ResourcePreEvent(metadata=metadata),
                )
            )

    # ------------------------------------------------------------------ the Automation API surface used

    def preview(self, diff: bool = False, on_event: Any = None, plan: str | None = None, **_: Any) -> PreviewResult:
        self.engine.previews += 1
        declared, _ = self._declared(extra=False)
        steps = self._steps(declared)
        if plan:
            Path(plan).write_text(json.dumps([[op, key] for op, key, _ in steps if op != "same"]))
        self._emit(on_event, steps)
        counts: dict[events.OpType, int] = {}
        for op, _, _ in steps:
            counts[events.OpType(op)] = counts.get(events.OpType(op), 0) + 1
        return PreviewResult(stdout="", stderr="", change_summary=counts)

    def up(self, plan: str | None = None, on_output: Any = None, on_event: Any = None, **_: Any) -> UpResult:
        self.engine.ups += 1
        declared, values = self._declared(extra=self.engine.extra_before_up)
        steps = self._steps(declared)
        if plan and not self.engine.ignore_plan:
            planned = {tuple(item) for item in json.loads(Path(plan).read_text())}
            outside = [(op, key) for op, key, _ in steps if op != "same" and (op, key) not in planned]
            if outside:
                op, key = outside[0]
                raise CommandError(
                    CommandResult(
                        stdout="",
                        stderr=f"error: {key}: resource violates plan: {op} is not allowed by the plan",
                        code=255,
                    )
                )
        self._emit(on_event, steps)
        for number, (op, key, _) in enumerate(steps):
            if self.engine.fail_up is not None and number >= self.engine.fail_up:
                raise CommandError(
                    CommandResult(stdout="", stderr=f"error: {key}: creating failed: AccessDenied", code=255)
                )
            if op == "delete":
                self.state.resources.pop(key, None)
            else:
                self.state.resources[key] = declared[key][1]
        self.state.outputs = values
        if on_output is not None:
            on_output(f"Resources: {len(steps)} handled\n")
        summary = UpdateSummary(
            kind="update",
            start_time=dt.datetime.now(dt.UTC),
            message="",
            environment={},
            config={},
            result="succeeded",
        )
        return UpResult(
            stdout="",
            stderr="",
            summary=summary,
            outputs={k: OutputValue(value=v, secret=False) for k, v in values.items()},
        )

    def outputs(self) -> dict[str, OutputValue]:
        return {k: OutputValue(value=v, secret=False) for k, v in self.state.outputs.items()}
