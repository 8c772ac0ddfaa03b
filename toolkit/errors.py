"""The errors a user of the toolkit can see, on the ground floor: every layer raises these, the CLI turns them into
one message and a documented exit code (see `toolkit.cli.common`).

- `UsageError` (exit 2): bad input or a missing part; the message names the object, the rule broken and the way out.
  Nothing was changed.
- `RefusedError` (exit 3): a safety rule refuses the request before anything changes; it carries the rule's verdict
  (a stable rule id and a sentence a person can act on).
- `UnobservableError` (exit 3): a component's data plane cannot be observed (no endpoint, refused credentials, TLS
  failure), so nothing about it could be proven; the message says what is missing and how to provide it.

Imports nothing of the toolkit but the model's `Verdict` (plain data).
"""

from __future__ import annotations

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
