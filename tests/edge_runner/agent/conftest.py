"""Fixtures of the agent's tests: a throw-away data directory and the platform double."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from edge_runner.runtime.paths import RunnerPaths
from tests.edge_runner.agent.platform_double import PlatformDouble


@pytest.fixture
def paths() -> Iterator[RunnerPaths]:
    layout = RunnerPaths.temporary()
    yield layout
    layout.remove_all()


@pytest.fixture
async def platform() -> AsyncIterator[PlatformDouble]:
    """A running ``PlatformDouble`` (stands in for the platform; see its module)."""
    double = await PlatformDouble().start()
    yield double
    await double.stop()
