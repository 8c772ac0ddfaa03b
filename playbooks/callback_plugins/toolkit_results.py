"""Ansible stdout callback: one JSON document with every task result and the recap, read by
toolkit/provision/ansible.py (ansible-core 2.19 ships no JSON callback of its own; ansible.posix's is not
installable here). Results of tasks marked no_log arrive already censored by Ansible.

Shape: {"plays": [{"play": {"name"}, "tasks": [{"task": {"name"}, "hosts": {HOST: result}}]}], "stats": {...}}
"""

from __future__ import annotations

import json
from typing import Any

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: toolkit_results
type: stdout
short_description: One JSON document of task results for the toolkit
description:
  - Prints every task result per host and the play recap as one JSON document at the end of the run.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "toolkit_results"

    def __init__(self) -> None:
        super().__init__()
        self.plays: list[dict[str, Any]] = []

    def v2_playbook_on_play_start(self, play: Any) -> None:
        self.plays.append({"play": {"name": play.get_name()}, "tasks": []})

    def _task_entry(self, task: Any) -> dict[str, Any]:
        tasks = self.plays[-1]["tasks"] if self.plays else []
        if not tasks or tasks[-1]["task"]["uuid"] != task._uuid:
            tasks.append({"task": {"name": task.get_name(), "uuid": task._uuid}, "hosts": {}})
        entry: dict[str, Any] = tasks[-1]
        return entry

    def v2_playbook_on_task_start(self, task: Any, is_conditional: bool) -> None:
        self._task_entry(task)

    def _record(self, result: Any, **flags: bool) -> None:
        entry = self._task_entry(result._task)
        data = dict(result._result)
        data.update(flags)
        entry["hosts"][result._host.get_name()] = data

    def v2_runner_on_ok(self, result: Any) -> None:
        self._record(result)

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        self._record(result, failed=True)

    def v2_runner_on_skipped(self, result: Any) -> None:
        self._record(result, skipped=True)

    def v2_runner_on_unreachable(self, result: Any) -> None:
        self._record(result, unreachable=True)

    def v2_playbook_on_stats(self, stats: Any) -> None:
        summary = {host: stats.summarize(host) for host in sorted(stats.processed)}
        self._display.display(json.dumps({"plays": self.plays, "stats": summary}, default=str))
