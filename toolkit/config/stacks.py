"""Where the region stack files live: the one resolver of the project's `stacks/` folder.

`resolve_stacks_dir(explicit)` answers, first match wins:
1. `explicit` (the command's `--stacks-dir`), when given;
2. `$TOOLKIT_STACKS_DIR`, when set and not empty;
3. the project root found from the working directory upwards, as git finds its root: the nearest directory,
   the working directory itself or one of its ancestors, that holds `stacks/Pulumi.yaml`; its `stacks/` is
   the answer.
An explicit folder or `$TOOLKIT_STACKS_DIR` must hold `Pulumi.yaml` (the Pulumi project file), so a typo
never silently yields an empty folder. When nothing matches, `StacksDirNotFoundError` names every place that
was looked at and the ways out. Nothing is created and nothing outside the looked-at paths is read.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

PROJECT_FILE = "Pulumi.yaml"
STACKS_FOLDER = "stacks"
ENV_VAR = "TOOLKIT_STACKS_DIR"


class StacksDirNotFoundError(ValueError):
    """No stacks folder could be resolved; the message says where it looked and how to point at one."""


def _checked(folder: Path, origin: str) -> Path:
    if not (folder / PROJECT_FILE).is_file():
        raise StacksDirNotFoundError(
            f"{origin} names {folder}, which holds no {PROJECT_FILE} (the Pulumi project file of the region "
            f"stacks); point it at the project's `{STACKS_FOLDER}/` folder"
        )
    return folder.resolve()


def find_project_stacks(start: Path) -> Path | None:
    """`<root>/stacks` of the nearest directory from `start` upwards that holds `stacks/Pulumi.yaml`, or None."""
    here = start.resolve()
    for folder in (here, *here.parents):
        candidate = folder / STACKS_FOLDER
        if (candidate / PROJECT_FILE).is_file():
            return candidate
    return None


def resolve_stacks_dir(
    explicit: Path | str | None = None,
    *,
    cwd: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Path:
    """The stacks folder to use (see the module docstring); raises StacksDirNotFoundError when there is none."""
    if explicit is not None and str(explicit) != "":
        return _checked(Path(explicit).expanduser(), "--stacks-dir")
    env = os.environ if environ is None else environ
    override = env.get(ENV_VAR, "")
    if override:
        return _checked(Path(override).expanduser(), f"${ENV_VAR}")
    start = (cwd or Path.cwd()).resolve()
    found = find_project_stacks(start)
    if found is not None:
        return found
    raise StacksDirNotFoundError(
        f"no stacks folder: looked for {STACKS_FOLDER}/{PROJECT_FILE} in {start} and each of its parents up to "
        f"{start.anchor}, and neither --stacks-dir nor ${ENV_VAR} is set; run the command from inside the "
        f"project (the folder holding {STACKS_FOLDER}/), pass --stacks-dir DIR or set {ENV_VAR}=DIR"
    )
