"""Shared helpers of the provision tests: environments written to a temporary $TOOLKIT_ENVIRONMENTS_DIR and the
offline chart renderer of the chart tests (tests/charts/chart_render.py, same native call)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

CHARTS_TESTS = Path(__file__).resolve().parents[1] / "charts"
if str(CHARTS_TESTS) not in sys.path:
    sys.path.insert(0, str(CHARTS_TESTS))

from chart_render import render_manifests  # noqa: E402

__all__ = ["render_manifests", "write_environment"]


def write_environment(directory: Path, name: str, document: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path
