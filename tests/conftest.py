"""Suite-wide isolation: every test gets its own toolkit state directory and no ambient environment choice."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _isolated_toolkit_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOOLKIT_STATE_DIR", str(tmp_path / "toolkit-state"))
    monkeypatch.delenv("TOOLKIT_ENV", raising=False)
    monkeypatch.delenv("TOOLKIT_ENVIRONMENTS_DIR", raising=False)
