"""The one stacks resolver: --stacks-dir, then $TOOLKIT_STACKS_DIR, then the project root found upwards (as git
does); otherwise an error naming what was looked for. Environments use the same answer."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolkit.config.stacks import StacksDirNotFoundError, resolve_stacks_dir


def _project(root: Path) -> Path:
    (root / "stacks").mkdir(parents=True)
    (root / "stacks" / "Pulumi.yaml").write_text("name: region\n")
    return root / "stacks"


def test_found_from_the_working_directory_upwards(tmp_path: Path) -> None:
    stacks = _project(tmp_path / "project")
    deep = tmp_path / "project" / "a" / "b"
    deep.mkdir(parents=True)
    assert resolve_stacks_dir(cwd=deep, environ={}) == stacks.resolve()
    assert resolve_stacks_dir(cwd=tmp_path / "project", environ={}) == stacks.resolve()


def test_the_nearest_project_wins(tmp_path: Path) -> None:
    _project(tmp_path / "outer")
    inner = _project(tmp_path / "outer" / "inner")
    assert resolve_stacks_dir(cwd=tmp_path / "outer" / "inner", environ={}) == inner.resolve()


def test_explicit_then_environment_then_search(tmp_path: Path) -> None:
    a, b, c = _project(tmp_path / "a"), _project(tmp_path / "b"), _project(tmp_path / "c")
    env = {"TOOLKIT_STACKS_DIR": str(b)}
    assert resolve_stacks_dir(a, cwd=tmp_path / "c", environ=env) == a.resolve()
    assert resolve_stacks_dir(None, cwd=tmp_path / "c", environ=env) == b.resolve()
    assert resolve_stacks_dir(None, cwd=tmp_path / "c", environ={}) == c.resolve()


def test_nothing_found_names_where_it_looked(tmp_path: Path) -> None:
    lost = tmp_path / "lost"
    lost.mkdir()
    with pytest.raises(StacksDirNotFoundError) as caught:
        resolve_stacks_dir(cwd=lost, environ={})
    message = str(caught.value)
    assert f"looked for stacks/Pulumi.yaml in {lost.resolve()} and each of its parents up to /" in message
    assert "--stacks-dir DIR or set TOOLKIT_STACKS_DIR=DIR" in message
    with pytest.raises(StacksDirNotFoundError, match=r"\$TOOLKIT_STACKS_DIR names .*, which holds no Pulumi.yaml"):
        resolve_stacks_dir(cwd=lost, environ={"TOOLKIT_STACKS_DIR": str(lost)})


def test_environments_use_the_same_resolver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from toolkit.config import environments

    stacks = _project(tmp_path / "p")
    monkeypatch.delenv("TOOLKIT_STACKS_DIR", raising=False)
    monkeypatch.chdir(tmp_path / "p")
    assert environments.stacks_dir() == stacks.resolve()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(environments.EnvironmentError_, match="no stacks folder"):
        environments.stacks_dir()
