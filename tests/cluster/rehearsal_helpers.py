"""Running `rehearse` on the session's local control plane as `toolkit rehearse --env E` would: the environment file
in a temporary $TOOLKIT_ENVIRONMENTS_DIR, the state in a temporary $TOOLKIT_STATE_DIR, and the catalog's worker
image run by the node agent from this virtualenv (as `toolkit cluster up` maps it) for the duration of the run."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml


def rehearse_on_session_cluster(
    local_env: Any,
    folder: Path,
    name: str,
    document: dict[str, Any],
    from_versions: dict[str, str],
    to_versions: dict[str, str],
    options: Any,
    on_event: Callable[[Any], None] | None = None,
) -> tuple[Any, float]:
    """(the report, the seconds the whole rehearsal took); environment `name` = `document`, state under `folder`."""
    from toolkit import catalog
    from toolkit.config.environments import resolve
    from toolkit.rehearsal.run import rehearse

    envs, state = folder / "envs", folder / "state"
    envs.mkdir(parents=True, exist_ok=True)
    (envs / f"{name}.yaml").write_text(yaml.safe_dump(document))
    image = catalog.load().component("workers").image
    local_env.agent.set_runnable_image(image, Path(sys.executable).parent)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("TOOLKIT_ENVIRONMENTS_DIR", str(envs))
            patch.setenv("TOOLKIT_STATE_DIR", str(state))
            started = time.monotonic()
            report = rehearse(resolve(name), from_versions, to_versions, options, on_event=on_event)
            return report, time.monotonic() - started
    finally:
        local_env.agent.remove_runnable_image(image)
