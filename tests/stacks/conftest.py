"""Shared fixtures: the repository's stacks folder, a writable copy of it, and captured programs (cached)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from functools import cache
from pathlib import Path

import pytest

from toolkit.compliance import DeclaredResource
from toolkit.config.region import load_region

STACKS = Path(__file__).resolve().parents[2] / "stacks"
REGIONS = ("eu-west-1", "us-east-1")


@cache
def _capture(region: str) -> tuple[DeclaredResource, ...]:
    from toolkit.provision.pulumi import capture_region

    return tuple(capture_region(load_region(region, STACKS), STACKS))


@pytest.fixture(scope="session")
def captured() -> Callable[[str], tuple[DeclaredResource, ...]]:
    """What the program declares for a shipped region, captured once per session."""
    return _capture


@pytest.fixture
def stacks_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "stacks"
    shutil.copytree(STACKS, folder, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setenv("TOOLKIT_STACKS_DIR", str(folder))
    return folder
