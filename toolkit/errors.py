"""The errors a user of the toolkit can see, on the ground floor: every layer raises these, the CLI turns them into
one message and a documented exit code (see `toolkit.cli.common`).

- `UsageError` (exit 2): bad input or a missing part; the message names the object, the rule broken and the way out.
  Nothing was changed.
- `RefusedError` (exit 3): a safety rule refuses the request before anything changes; it carries the rule's verdict
  (a stable rule id and a sentence a person can act on).
- `UnobservableError` (exit 3): a component's data plane cannot be observed (no endpoint, refused credentials, TLS
  failure), so nothing about it could be proven; the message says what is missing and how to provide it.
- `MissingExtraError` (exit 2): a command needs a library this installation left out (the toolkit installs by role:
  `toolkit`, `toolkit[aws]`, `toolkit[worker]`, `toolkit[report]`, `toolkit[local]`); `missing_extra` is the one place
  that turns an ImportError into the exact install command, read from the installed package's own metadata (the
  pins of pyproject.toml), so the hint never drifts from what the extras hold.

Imports nothing of the toolkit but the model's `Verdict` (plain data).
"""

from __future__ import annotations

import re

from toolkit.model.plan import Verdict


class ToolkitError(Exception):
    """Base of every error meant for a person; `exit_code` is what the CLI exits with."""

    exit_code = 1


class UsageError(ToolkitError, ValueError):
    """Bad input: the message names the object, the rule and the way out. Exit code 2."""

    exit_code = 2


class RefusedError(ToolkitError):
    """A safety rule refuses the request before anything changes. Exit code 3."""

    exit_code = 3

    def __init__(self, verdict: Verdict) -> None:
        super().__init__(verdict.reason)
        self.verdict = verdict


class UnobservableError(RefusedError):
    """A data plane the engine must gate on cannot be observed. Exit code 3."""

    def __init__(self, component: str, reason: str) -> None:
        super().__init__(Verdict.refuse(f"{component}.observable", reason))
        self.component = component


DISTRIBUTION = "toolkit"
# import name -> distribution name, where they differ by more than "_" vs "-"
_DISTRIBUTION_OF_MODULE = {"yaml": "pyyaml", "helm_python": "helm-python-sdk", "prometheus_client": "prometheus-client"}
# the extra to recommend when a package is in several: the smallest role first; dev (everything) last
_EXTRA_PREFERENCE = ("worker", "report", "aws", "local", "dev")
# `name[extras] pin; extra == "role"` as importlib.metadata gives a requirement
_REQUIREMENT = re.compile(
    r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*([^;]*?)\s*(?:;\s*extra\s*==\s*\"([^\"]+)\")?\s*$"
)


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared_requirements() -> list[tuple[str, str, str | None]]:
    """(distribution with its [extras], pin, extra or None for the base) of every requirement the installed toolkit
    declares; empty when the toolkit runs from a source tree that was never installed."""
    from importlib import metadata

    try:
        lines = metadata.requires(DISTRIBUTION) or []
    except metadata.PackageNotFoundError:
        return []
    found = []
    for line in lines:
        match = _REQUIREMENT.match(line)
        if match:
            name, extras, pin, extra = match.groups()
            found.append((name + (extras or ""), pin, extra))
    return found


class MissingExtraError(UsageError):
    """A library the command needs is not installed; the message is the install command. Exit code 2."""

    def __init__(self, module: str, message: str) -> None:
        super().__init__(message)
        self.module = module


def _extras_reaching(extra: str, requirements: list[tuple[str, str, str | None]]) -> set[str]:
    """`extra` and every extra it pulls in through a self-reference (`toolkit[worker]` inside `local`)."""
    reached, todo = set(), [extra]
    while todo:
        current = todo.pop()
        if current in reached:
            continue
        reached.add(current)
        for name, _, owner in requirements:
            if owner == current and _normal(name).startswith(DISTRIBUTION + "["):
                todo.extend(e.strip() for e in name.split("[", 1)[1].rstrip("]").split(","))
    return reached


def missing_extra(
    exc: ImportError, needed_for: str = "this command", extra: str | None = None
) -> MissingExtraError | None:
    """The error a person should see for `exc`, when the missing module belongs to one of the toolkit's declared
    dependencies (base or extra): which package is missing, and the exact `pip install` that brings it. `extra`
    names the extra to recommend when it holds the package (directly or through another extra it includes). None
    when the module is none of the toolkit's dependencies (then the ImportError is a bug, not an installation choice,
    and must surface as one)."""
    module = (exc.name or "").split(".")[0]
    if not module:
        return None
    distribution = _DISTRIBUTION_OF_MODULE.get(module, module)
    wanted = _normal(distribution)
    requirements = declared_requirements()
    declared = [(name, pin, owner) for name, pin, owner in requirements if _normal(name.split("[")[0]) == wanted]
    if not declared:
        return None
    pin = f"{declared[0][0].split('[')[0]}{declared[0][1]}"
    extras = {owner for _, _, owner in declared if owner is not None}
    if extra is not None and extras & _extras_reaching(extra, requirements):
        spec, role = f"[{extra}]", f"the {extra} extra"
    elif len(extras) < len(declared) or not extras:  # in the base dependencies
        spec, role = "", "the orchestrator's base install"
    else:
        rank = {name: i for i, name in enumerate(_EXTRA_PREFERENCE)}
        chosen = sorted(extras, key=lambda e: (rank.get(e, len(rank)), e))[0]
        spec, role = f"[{chosen}]", f"the {chosen} extra"
    return MissingExtraError(
        module,
        f"{needed_for} needs {pin} (import {module}), which this installation does not have; it comes with {role}: "
        f"pip install '{DISTRIBUTION}{spec}' (from a checkout: pip install -e '.{spec}')",
    )


def require_extra(extra: str, needed_for: str) -> None:
    """Raise a MissingExtraError listing every package of `extra` (and of the extras it includes) that is not
    installed, with the one command that installs them all; nothing when all are there, or when the toolkit runs from
    a source tree that was never installed (no metadata to compare with)."""
    from importlib import metadata

    requirements = declared_requirements()
    reached = _extras_reaching(extra, requirements)
    missing = []
    for name, pin, owner in requirements:
        base_name = name.split("[")[0]
        if owner not in reached or _normal(base_name) == DISTRIBUTION:
            continue
        try:
            metadata.distribution(base_name)
        except metadata.PackageNotFoundError:
            missing.append(f"{base_name}{pin}")
    if missing:
        raise MissingExtraError(
            missing[0],
            f"{needed_for} needs {', '.join(sorted(set(missing)))}, which this installation does not have; they "
            f"come with the {extra} extra: pip install '{DISTRIBUTION}[{extra}]' "
            f"(from a checkout: pip install -e '.[{extra}]')",
        )
