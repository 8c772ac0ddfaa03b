"""Print the exact pins of one install role, read from pyproject.toml (the only place pins live), one per line.

    python scripts/extra_requirements.py worker       # the [worker] extra: what the worker image installs
    python scripts/extra_requirements.py base         # the orchestrator: [project].dependencies
    python scripts/extra_requirements.py local        # extras that include others (toolkit[worker]) are expanded

A role is either `base` or an extra; `toolkit[...]` self-references are expanded (and not printed), so the output is
exactly what `pip install -r` needs next to `pip install --no-deps toolkit`. The Dockerfile uses it to build an image
that carries only the worker's dependencies, and the slim-install test builds its virtualenv the same way.
Standard library only (it runs in the image's build stage before anything is installed).
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
SELF = re.compile(r"^toolkit\[([^\]]+)\]$")


def requirements(role: str, pyproject: Path = PYPROJECT) -> list[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    extras: dict[str, list[str]] = project.get("optional-dependencies", {})
    if role != "base" and role not in extras:
        raise SystemExit(f"unknown role {role!r}: use base or one of {', '.join(sorted(extras))}")
    found: list[str] = []
    seen: set[str] = set()

    def walk(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        for line in project["dependencies"] if name == "base" else extras[name]:
            nested = SELF.match(line.replace(" ", ""))
            if nested:
                for inner in nested.group(1).split(","):
                    walk(inner.strip())
            elif line not in found:
                found.append(line)

    walk(role)
    return found


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    print("\n".join(requirements(sys.argv[1])))
