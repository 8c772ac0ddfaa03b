"""Session fixture for the chart tests: every (chart, value set, Kubernetes version) is rendered once."""

from __future__ import annotations

import pytest
from chart_render import RenderCache


@pytest.fixture(scope="session")
def renders() -> RenderCache:
    return RenderCache()
