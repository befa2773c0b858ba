"""Fixtures shared by the node tests."""

from pathlib import Path

import pytest

from edge_runner.runtime.paths import RunnerPaths


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """The empty node data directory of a runner layout in ``tmp_path / "runner"``; a harness
    gets that layout as ``paths=RunnerPaths(data_dir.parent)``."""
    paths = RunnerPaths(tmp_path / "runner")
    return paths.ensure(paths.node_data)
