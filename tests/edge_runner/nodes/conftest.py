"""Fixtures shared by the node tests."""

from pathlib import Path

import pytest


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty runner data directory, named through the environment as the runner reads it."""
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv("MANIFOLD_RUNNER_DATA_DIR", str(root))
    return root
